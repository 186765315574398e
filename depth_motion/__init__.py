"""Depth, egomotion and camera intrinsics from unlabeled video, and the geometry every stage warps with."""
