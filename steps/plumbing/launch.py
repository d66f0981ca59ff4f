"""Running a function on several processes or machines with torch.distributed's elastic launcher,
the engine behind `torchrun` and `accelerate launch`: one call per machine, each starting its
share of the processes; the Trainer inside them finds the others through the environment the
launcher sets (RANK, WORLD_SIZE, MASTER_ADDR...) and runs data-parallel, NCCL on GPUs, gloo on CPUs.
"""

import os
import signal
from dataclasses import dataclass

import torch
from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
from torch.distributed.launcher.api import LaunchConfig, elastic_launch

from steps.core.errors import PipelineError


@dataclass(frozen=True)
class Processes:
    """accelerate's settings: num_processes counts every process on every machine."""
    num_processes: int = 1
    num_machines: int = 1
    machine_rank: int = 0
    main_process_ip: str = "127.0.0.1"
    main_process_port: int = 29500

    def __post_init__(self):
        if self.num_processes % self.num_machines:
            raise PipelineError(f"num_processes {self.num_processes} is not a multiple of num_machines "
                                f"{self.num_machines}: num_processes counts the processes of all machines together")
        if not 0 <= self.machine_rank < self.num_machines:
            raise PipelineError(f"machine_rank {self.machine_rank} is not between 0 and num_machines - 1 "
                                f"({self.num_machines - 1})")

    @property
    def distributed(self) -> bool:
        return self.num_processes > 1

    @property
    def per_machine(self) -> int:
        return self.num_processes // self.num_machines

    @property
    def is_main_machine(self) -> bool:
        return self.machine_rank == 0


def cpu_threads(per_machine: int) -> int:
    """Each process's share of this machine's cores, so that processes do not fight over them."""
    return max(1, (os.cpu_count() or 1) // per_machine)


def failure_line(error: ChildFailedError) -> str:
    """The first process that failed and why, in one line (the launcher's own message is a page)."""
    rank, failure = error.get_first_failure()
    if failure.exitcode < 0:
        why = f"killed by {signal.Signals(-failure.exitcode).name}"
    else:
        message = failure.message if isinstance(failure.message, str) else str(failure.message.get("message", ""))
        lines = [line.strip() for line in message.splitlines() if line.strip()]
        last = lines[-1].removeprefix(f"{PipelineError.__name__}: ") if lines else ""  # our own errors read as is
        why = f"exit code {failure.exitcode}" + (f": {last[:300]}" if last else "")
    return f"training process of rank {rank} failed ({why})"


def launch(function, args: tuple, processes: Processes):
    """`function(*args)` on this machine's share of the processes, once all machines joined;
    its return value on the first process (global rank 0), None on other machines.

    One process: called right here, as plain Python."""
    if not processes.distributed:
        return function(*args)
    config = LaunchConfig(
        min_nodes=processes.num_machines, max_nodes=processes.num_machines, nproc_per_node=processes.per_machine,
        # torchrun's own choice for --master-addr/--master-port: the main machine hosts the rendezvous store
        rdzv_backend="static", rdzv_endpoint=f"{processes.main_process_ip}:{processes.main_process_port}",
        rdzv_configs={"rank": processes.machine_rank}, max_restarts=0, run_id=f"train@{processes.main_process_ip}",
        start_method="spawn")  # fork would copy the threads MLflow runs (system metrics) mid-state
    if not torch.cuda.is_available():  # torchrun's default; without it each process takes every core
        os.environ.setdefault("OMP_NUM_THREADS", str(cpu_threads(processes.per_machine)))
    try:
        return elastic_launch(config, function)(*args).get(0)
    except ChildFailedError as error:
        raise PipelineError(failure_line(error)) from None
