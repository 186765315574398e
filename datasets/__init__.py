"""Video clips as tf.data: the synthetic generator, scene readers, sampling, label fractions and augmentation."""
