"""Training: a comparison's jobs and the worker queue (engine), the lock-step loop a worker runs (trainer),
what is measured inside a model as it trains (probes), the weights the worker shares with the server
(weights), where it trains (device), and the experiments that run in the same queue (tasks).

The package itself imports nothing, so `resnet_viz.training.x` loads only x (and torch only where x needs it).
"""
