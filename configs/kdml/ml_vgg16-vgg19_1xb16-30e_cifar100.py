_base_ = './kdml_r152-to-vgg16-vgg19_1xb16-30e_cifar100.py'
# Paper B V2 baseline: mutual learning of the students only, no teacher.
model = dict(teacher=None)
