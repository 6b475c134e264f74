_base_ = '../kvasir_kdml_v3.py'
# Paper B V3 baseline on Kvasir-SEG: mutual learning of the students only (no teacher).
model = dict(teacher=None)
