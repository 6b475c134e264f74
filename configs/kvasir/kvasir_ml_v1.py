_base_ = '../kvasir_kdml_v1.py'
# Paper B V1 baseline on Kvasir-SEG: mutual learning of the students only (no teacher).
model = dict(teacher=None)
