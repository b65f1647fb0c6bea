"""Neural style transfer and silhouette masking (book ch. 5).

- :mod:`services.style.losses`: Gram matrices and the style, content and total-variation losses.
- :mod:`services.style.transfer`: the VGG19 feature extractor, the optimisation step
  (``tf.function``, optionally XLA), coarse-to-fine runs and the background-job function.
- :mod:`services.style.masks`: silhouette validation, masking, feathering, Otsu/GrabCut silhouettes.
- :mod:`services.style.builtin_images`: offline content and style pictures (scikit-image photos,
  a generated stained-glass mosaic, textures, the horse silhouette).

Only :mod:`~services.style.losses` and :mod:`~services.style.transfer` import TensorFlow, inside
functions, through :mod:`services.runtime`.
"""
