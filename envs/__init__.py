"""Game engines as gymnasium environments. Importing this package registers `worldsim/Voxel-v0`."""

from gymnasium.envs.registration import register, registry

if "worldsim/Voxel-v0" not in registry:
    register(id="worldsim/Voxel-v0", entry_point="envs.voxel.env:VoxelEnv")

if "worldsim/Physics-v0" not in registry:
    register(id="worldsim/Physics-v0", entry_point="envs.physics.env:PhysicsEnv")
