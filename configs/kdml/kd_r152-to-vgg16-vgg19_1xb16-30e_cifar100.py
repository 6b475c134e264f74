_base_ = './kdml_r152-to-vgg16-vgg19_1xb16-30e_cifar100.py'
# Paper B V2 baseline: KD from the teacher only, no mutual learning.
model = dict(ml_weight=0.0)
