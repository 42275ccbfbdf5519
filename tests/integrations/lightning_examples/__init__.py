"""Lightning's own examples, byte for byte as ``examples/pytorch/basics/`` of
Lightning-AI/pytorch-lightning has them (Apache-2.0, their headers kept), run by
``tests/integrations/test_lightning_examples.py`` under tuner; ruff leaves them as they are."""
