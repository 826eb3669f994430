"""Self-supervised pretraining: SF-MIM (USFM), MAE (USF-MAE) and teacher features (URFM).

    usfm-edge pretrain --objective sfmim --data DIR --model usfm_vit_t16 --img-size 64 --steps 50 --out RUN
    torchrun --nproc_per_node 8 -m usfm_edge pretrain --objective sfmim --data manifest.csv ...
"""
