"""Tests of the depth and motion networks and their unsupervised losses."""
