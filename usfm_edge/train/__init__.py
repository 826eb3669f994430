"""Pretraining (SF-MIM, MAE, teacher features) and fine-tuning. Issues #5 and #6 build it."""
