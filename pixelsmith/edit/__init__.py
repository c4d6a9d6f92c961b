"""User-level edits with trained models: translate (CycleGAN), and more to come."""
