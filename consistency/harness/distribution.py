"""Choosing the tf.distribute strategy: several workers (TF_CONFIG), several GPUs, CPU replicas, or one device."""

import json
import os

from absl import logging
import tensorflow as tf


def split_cpu(num_replicas):
  """Splits the physical CPU into `num_replicas` logical devices (must run before TensorFlow initialises them).

  Calling it again with the same count is a no-op; a different count after initialisation is an error.
  """
  cpu = tf.config.list_physical_devices("CPU")[0]
  current = tf.config.get_logical_device_configuration(cpu)
  if current is not None and len(current) == num_replicas:
    return
  try:
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * num_replicas)
  except RuntimeError as e:
    have = len(tf.config.list_logical_devices("CPU"))
    if have < num_replicas:
      raise RuntimeError(f"Cannot split the CPU into {num_replicas} devices: TensorFlow already initialised {have}. "
                         "Split it before any TensorFlow op runs.") from e


def is_multi_worker():
  cluster = json.loads(os.environ.get("TF_CONFIG", "{}")).get("cluster", {})
  return len(cluster.get("worker", [])) + len(cluster.get("chief", [])) > 1


def create_strategy(num_cpu_replicas=1):
  """MultiWorkerMirroredStrategy under a multi-worker TF_CONFIG, MirroredStrategy over several GPUs or over
  `num_cpu_replicas` (> 1) logical CPUs, else the default strategy (one device)."""
  if is_multi_worker():
    name, strategy = "MultiWorkerMirroredStrategy", tf.distribute.MultiWorkerMirroredStrategy()
  else:
    gpus = tf.config.list_physical_devices("GPU")
    if len(gpus) > 1:
      name, strategy = "MirroredStrategy (GPUs)", tf.distribute.MirroredStrategy()
    elif not gpus and num_cpu_replicas > 1:
      split_cpu(num_cpu_replicas)
      devices = [d.name for d in tf.config.list_logical_devices("CPU")][:num_cpu_replicas]
      name = "MirroredStrategy (logical CPUs)"
      strategy = tf.distribute.MirroredStrategy(devices, cross_device_ops=tf.distribute.ReductionToOneDevice())
    else:
      name, strategy = "default strategy (one device)", tf.distribute.get_strategy()
  logging.info("%s with %d replica(s) in sync.", name, strategy.num_replicas_in_sync)
  return strategy


def is_chief(strategy):
  """Whether this task writes summaries, flags, metrics and the real checkpoints."""
  resolver = getattr(strategy, "cluster_resolver", None)
  if resolver is None or not resolver.task_type:
    return True
  return resolver.task_type == "chief" or (resolver.task_type == "worker" and resolver.task_id == 0 and
                                           "chief" not in resolver.cluster_spec().as_dict())


def task_id(strategy):
  resolver = getattr(strategy, "cluster_resolver", None)
  return 0 if resolver is None or resolver.task_id is None else resolver.task_id
