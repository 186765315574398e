"""The built-in synthetic video: procedural furnished rooms filmed by a moving camera, with exact depth, poses, K and
labels, written in the ScanNet layout (`generator`: the video and its command; `scene`: the rooms; `camera`: the
trajectories; `textures`: the materials; `raycast`: the renderer)."""
