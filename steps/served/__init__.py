"""The code a registered model ships and runs when it is served. It imports nothing of `steps`:
a version registered today still loads after the project's modules move."""
