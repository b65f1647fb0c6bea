"""Neural style transfer and silhouette masking (book ch. 5), with two engines.

- :mod:`services.style.settings`: what a run can be told (Gatys and fast), checked: finite
  values, step cap, memory estimate, picture shapes. No TensorFlow.
- :mod:`services.style.losses`: Gram matrices and the style, content and total-variation losses.
- :mod:`services.style.transfer`: Gatys on VGG19 (the optimisation step as a ``tf.function``,
  optionally XLA; coarse-to-fine; resume) and the ``style-transfer`` job body.
- :mod:`services.style.fast`: fast arbitrary style transfer with Magenta's TF Lite networks and
  the ``fast-style-transfer`` job body; :mod:`services.style.fast_models`: where those files come
  from (model cache, download with size and sha256).
- :mod:`services.style.submit`: queueing jobs from the page; :mod:`services.style.job_files`: the
  pictures a job receives and writes; :mod:`services.style.display`: pictures as the page shows
  them (size-limited, random-weight runs marked).
- :mod:`services.style.masks`: silhouette validation, masking, feathering, Otsu/GrabCut silhouettes.
- :mod:`services.style.builtin_images`: offline content and style pictures (scikit-image photos,
  a generated stained-glass mosaic, textures, the horse silhouette).

Only the job bodies (:mod:`~services.style.transfer`, :mod:`~services.style.fast`) and the losses
import TensorFlow, inside functions, through :mod:`services.runtime`; the page imports neither.
"""
