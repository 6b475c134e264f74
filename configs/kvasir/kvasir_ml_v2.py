_base_ = '../kvasir_kdml_v2.py'
# Paper B V2 baseline on Kvasir-SEG: mutual learning of the students only (no teacher).
model = dict(teacher=None)
