"""Datasets as TFDS array_record, one split per progressive-growing level.

  config        the data config (schema, validation, the prepare command for it)
  datasets      data config -> TFDS builder of the prepared dataset
  builder       base builder: one pass over the source, PNG per level, atomic prepare
  image_folder  any folder of PNG/JPEG/WebP images, optional labels
  fashion_mnist Fashion-MNIST from Debian's IDX files, offline
  catalog       any TFDS catalog dataset (TensorFlow only to download/convert it)
  images        decoding/conversion policy of one source image; PNG helpers
  levels        the official 2x2 box-filter levels
  prepare       the command line: stylegan-jax prepare

Training reads them through `stylegan_jax.input_pipeline`.
"""
