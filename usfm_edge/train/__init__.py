"""Training. ``finetune`` (segmentation, classification, enhancement) wires ``datasets``,
``augment``, ``losses``, ``optim``, ``state`` (resume) and ``evaluate``; pretraining (SF-MIM,
MAE, teacher features) arrives with issue #5."""
