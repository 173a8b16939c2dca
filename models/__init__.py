"""Networks (anonymizer, ReId backbone, reconstruction and inversion attackers), training and evaluation.

Build every network with :func:`anonreid.models.registry.create_model` (``list_models()`` names them:
``anonymizer_paper``, ``anonymizer_resunet``, ``reid_resnet18``, ``reid_resnet50``, ``e2vid``,
``firenet``, ``inversion``); each carries a frozen :class:`~anonreid.models.registry.ModelCfg` at
``.cfg``. Checkpoints: :mod:`anonreid.models.checkpoint`. The camera node's pair of models:
:func:`anonreid.models.bundle.load_model_bundle`. Training (``anonreid train``) and the run-directory
layout: :mod:`anonreid.models.train`. Heavy imports stay in the submodules.
"""
