_base_ = '../kvasir_kdml_v2.py'
# Paper B V2 baseline on Kvasir-SEG: KD from the teacher only (no mutual learning).
model = dict(ml_weight=0.0)
