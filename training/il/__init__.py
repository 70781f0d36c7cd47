"""The imitation-learning trainers: behavioral_cloning.py, dagger.py, gail.py (one readable file each)."""
