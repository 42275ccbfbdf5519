"""Training functions shipped with tuner: ``train(config, trial)``, plain PyTorch, no Ray; and, in
``simulated``, learning curves ``f(config, step)`` for the simulated backend."""
