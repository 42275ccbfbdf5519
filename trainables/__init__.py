"""Training functions shipped with tuner: ``train(config, trial)``, plain PyTorch, no Ray."""
