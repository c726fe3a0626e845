"""Asynchronous jobs of any kind (exports, bulk member matches): the runner, and the status, cancel and file URLs."""
