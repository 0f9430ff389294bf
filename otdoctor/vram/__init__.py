"""Peak VRAM of one OneTrainer training step, predicted from the config, component by component."""
