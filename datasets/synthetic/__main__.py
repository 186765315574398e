"""python -m datasets.synthetic --output_dir=DIR ...: writes the synthetic video (`generator`'s command)."""

from absl import app
from absl import flags

from datasets.synthetic import generator

if __name__ == "__main__":
  __doc__ = generator.__doc__  # the usage absl prints
  generator.define_flags()
  flags.adopt_module_key_flags(generator)
  app.run(generator.main)
