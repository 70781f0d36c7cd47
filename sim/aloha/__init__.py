"""MuJoCo ALOHA: the robot's description (robot.py), tasks (tasks.py), rendering (render.py), env (env.py)."""
