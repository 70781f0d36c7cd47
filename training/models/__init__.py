"""Policies the trainers train: MLP (discrete/continuous, optional action chunks), actor-critic, the VLA."""
