"""PyTorch definitions of the other methods' losses and trainable modules, transcribed from the
code their published numbers come from, for reference. Not part of the installed package: only
the tests and bench/step.py import them.

As ijckd_jax/torch_models/ is for the Flax models, these are the independent reference that
ijckd_jax/objectives/{fitnet,at,vid,rkd,pkt,ofd,crd,wsld,dkd}.py are checked against
(tests/test_objectives_{logits,features,heads,ofd}.py) and what bench/step.py times our step
against. Each keeps its source's names, arguments and arithmetic; what differs is said where
it is, and is only what a transcription away from CUDA and argparse needs (no .cuda(), no
prints, an `opt` namespace spelled out as arguments).

Sources:
- RepDistiller, github.com/HobbitLong/RepDistiller at commit b84f547 (2023-10-16; the files
  below last changed in 2019): distiller_zoo/{KD,AT,RKD,PKT,VID}.py, models/util.py ConvReg,
  crd/criterion.py, crd/memory.py, dataset/cifar100.py CIFAR100InstanceSample.
- mdistiller, github.com/megvii-research/mdistiller at commit a08d46f:
  mdistiller/distillers/{OFD,DKD}.py.
- The WSLD authors', github.com/bellymonster/Weighted-Soft-Label-Distillation at commit 67820dd:
  knowledge_distiller.py.
"""
import math

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from scipy.stats import norm


# ---- RepDistiller --------------------------------------------------------------------------

class DistillKL(nn.Module):
    """distiller_zoo/KD.py DistillKL (lines 7-17). `size_average=False` is the deprecated
    spelling of reduction='sum', which is what current torch maps it to."""
    def __init__(self, T):
        super().__init__()
        self.T = T

    def forward(self, y_s, y_t):
        p_s = F.log_softmax(y_s / self.T, dim=1)
        p_t = F.softmax(y_t / self.T, dim=1)
        return F.kl_div(p_s, p_t, reduction='sum') * (self.T ** 2) / y_s.shape[0]


class ConvReg(nn.Module):
    """models/util.py ConvReg (lines 131-154), FitNet's regressor, with its default use_relu=True.
    (The source's fourth case, a student map smaller than the teacher's but not half of it,
    raises there; here no convolution is made and the module fails when called.)"""
    def __init__(self, s_shape, t_shape):
        super().__init__()
        _, s_C, s_H, s_W = s_shape
        _, t_C, t_H, t_W = t_shape
        if s_H == 2 * t_H:
            self.conv = nn.Conv2d(s_C, t_C, kernel_size=3, stride=2, padding=1)
        elif s_H * 2 == t_H:
            self.conv = nn.ConvTranspose2d(s_C, t_C, kernel_size=4, stride=2, padding=1)
        elif s_H >= t_H:
            self.conv = nn.Conv2d(s_C, t_C, kernel_size=(1 + s_H - t_H, 1 + s_W - t_W))
        self.bn = nn.BatchNorm2d(t_C)

    def forward(self, x):
        return F.relu(self.bn(self.conv(x)))


class Attention(nn.Module):
    """distiller_zoo/AT.py Attention (lines 7-29), the authors' at/at_loss."""
    def __init__(self, p=2):
        super().__init__()
        self.p = p

    def forward(self, g_s, g_t):
        return [self.at_loss(f_s, f_t) for f_s, f_t in zip(g_s, g_t)]

    def at_loss(self, f_s, f_t):
        s_H, t_H = f_s.shape[2], f_t.shape[2]
        if s_H > t_H:
            f_s = F.adaptive_avg_pool2d(f_s, (t_H, t_H))
        elif s_H < t_H:
            f_t = F.adaptive_avg_pool2d(f_t, (s_H, s_H))
        return (self.at(f_s) - self.at(f_t)).pow(2).mean()

    def at(self, f):
        return F.normalize(f.pow(self.p).mean(1).view(f.size(0), -1))


class RKDLoss(nn.Module):
    """distiller_zoo/RKD.py RKDLoss (lines 8-58)."""
    def __init__(self, w_d=25, w_a=50):
        super().__init__()
        self.w_d = w_d
        self.w_a = w_a

    def forward(self, f_s, f_t):
        student = f_s.view(f_s.shape[0], -1)
        teacher = f_t.view(f_t.shape[0], -1)
        with torch.no_grad():
            t_d = self.pdist(teacher, squared=False)
            mean_td = t_d[t_d > 0].mean()
            t_d = t_d / mean_td
        d = self.pdist(student, squared=False)
        mean_d = d[d > 0].mean()
        d = d / mean_d
        loss_d = F.smooth_l1_loss(d, t_d)
        with torch.no_grad():
            td = (teacher.unsqueeze(0) - teacher.unsqueeze(1))
            norm_td = F.normalize(td, p=2, dim=2)
            t_angle = torch.bmm(norm_td, norm_td.transpose(1, 2)).view(-1)
        sd = (student.unsqueeze(0) - student.unsqueeze(1))
        norm_sd = F.normalize(sd, p=2, dim=2)
        s_angle = torch.bmm(norm_sd, norm_sd.transpose(1, 2)).view(-1)
        loss_a = F.smooth_l1_loss(s_angle, t_angle)
        return self.w_d * loss_d + self.w_a * loss_a

    @staticmethod
    def pdist(e, squared=False, eps=1e-12):
        e_square = e.pow(2).sum(dim=1)
        prod = e @ e.t()
        res = (e_square.unsqueeze(1) + e_square.unsqueeze(0) - 2 * prod).clamp(min=eps)
        if not squared:
            res = res.sqrt()
        res = res.clone()
        res[range(len(e)), range(len(e))] = 0
        return res


class PKT(nn.Module):
    """distiller_zoo/PKT.py PKT (lines 7-42), the authors' cosine_similarity_loss."""
    def forward(self, f_s, f_t):
        return self.cosine_similarity_loss(f_s, f_t)

    @staticmethod
    def cosine_similarity_loss(output_net, target_net, eps=0.0000001):
        output_net_norm = torch.sqrt(torch.sum(output_net ** 2, dim=1, keepdim=True))
        output_net = output_net / (output_net_norm + eps)
        output_net[output_net != output_net] = 0
        target_net_norm = torch.sqrt(torch.sum(target_net ** 2, dim=1, keepdim=True))
        target_net = target_net / (target_net_norm + eps)
        target_net[target_net != target_net] = 0
        model_similarity = torch.mm(output_net, output_net.transpose(0, 1))
        target_similarity = torch.mm(target_net, target_net.transpose(0, 1))
        model_similarity = (model_similarity + 1.0) / 2.0
        target_similarity = (target_similarity + 1.0) / 2.0
        model_similarity = model_similarity / torch.sum(model_similarity, dim=1, keepdim=True)
        target_similarity = target_similarity / torch.sum(target_similarity, dim=1, keepdim=True)
        return torch.mean(target_similarity * torch.log((target_similarity + eps) / (model_similarity + eps)))


cosine_similarity_loss = PKT.cosine_similarity_loss


class VIDLoss(nn.Module):
    """distiller_zoo/VID.py VIDLoss (lines 9-54), the authors' code."""
    def __init__(self, num_input_channels, num_mid_channel, num_target_channels, init_pred_var=5.0, eps=1e-5):
        super().__init__()

        def conv1x1(in_channels, out_channels, stride=1):
            return nn.Conv2d(in_channels, out_channels, kernel_size=1, padding=0, bias=False, stride=stride)

        self.regressor = nn.Sequential(conv1x1(num_input_channels, num_mid_channel), nn.ReLU(),
                                       conv1x1(num_mid_channel, num_mid_channel), nn.ReLU(),
                                       conv1x1(num_mid_channel, num_target_channels))
        self.log_scale = nn.Parameter(np.log(np.exp(init_pred_var - eps) - 1.0) * torch.ones(num_target_channels))
        self.eps = eps

    def forward(self, input, target):
        s_H, t_H = input.shape[2], target.shape[2]
        if s_H > t_H:
            input = F.adaptive_avg_pool2d(input, (t_H, t_H))
        elif s_H < t_H:
            target = F.adaptive_avg_pool2d(target, (s_H, s_H))
        pred_mean = self.regressor(input)
        pred_var = torch.log(1.0 + torch.exp(self.log_scale)) + self.eps
        pred_var = pred_var.view(1, -1, 1, 1)
        neg_log_prob = 0.5 * ((pred_mean - target) ** 2 / pred_var + torch.log(pred_var))
        return torch.mean(neg_log_prob)


# crd/criterion.py line 5.
eps = 1e-7


class CRDLoss(nn.Module):
    """crd/criterion.py CRDLoss (lines 8-48); the source's `opt` fields are its arguments:
    s_dim, t_dim (the pooled features' widths), feat_dim, nce_k, nce_t, nce_m, n_data."""
    def __init__(self, s_dim, t_dim, feat_dim, nce_k, nce_t, nce_m, n_data):
        super().__init__()
        self.embed_s = Embed(s_dim, feat_dim)
        self.embed_t = Embed(t_dim, feat_dim)
        self.contrast = ContrastMemory(feat_dim, n_data, nce_k, nce_t, nce_m)
        self.criterion_t = ContrastLoss(n_data)
        self.criterion_s = ContrastLoss(n_data)

    def forward(self, f_s, f_t, idx, contrast_idx=None):
        f_s = self.embed_s(f_s)
        f_t = self.embed_t(f_t)
        out_s, out_t = self.contrast(f_s, f_t, idx, contrast_idx)
        s_loss = self.criterion_s(out_s)
        t_loss = self.criterion_t(out_t)
        return s_loss + t_loss


class ContrastLoss(nn.Module):
    """crd/criterion.py ContrastLoss (lines 51-76): the paper's Eq. 18."""
    def __init__(self, n_data):
        super().__init__()
        self.n_data = n_data

    def forward(self, x):
        bsz = x.shape[0]
        m = x.size(1) - 1
        Pn = 1 / float(self.n_data)
        P_pos = x.select(1, 0)
        log_D1 = torch.div(P_pos, P_pos.add(m * Pn + eps)).log_()
        P_neg = x.narrow(1, 1, m)
        log_D0 = torch.div(P_neg.clone().fill_(m * Pn), P_neg.add(m * Pn + eps)).log_()
        return - (log_D1.sum(0) + log_D0.view(-1, 1).sum(0)) / bsz


class Embed(nn.Module):
    """crd/criterion.py Embed (lines 79-90), with Normalize(2) (lines 93-102) written out."""
    def __init__(self, dim_in=1024, dim_out=128):
        super().__init__()
        self.linear = nn.Linear(dim_in, dim_out)
        self.power = 2

    def forward(self, x):
        x = x.view(x.shape[0], -1)
        x = self.linear(x)
        norm = x.pow(self.power).sum(1, keepdim=True).pow(1. / self.power)
        return x.div(norm)


class ContrastMemory(nn.Module):
    """crd/memory.py ContrastMemory (lines 6-79): the two memory banks, the scores of each
    example's K + 1 rows, the normalising constants Z set from the first batch, and the banks'
    momentum update. `idx` ([batch, K + 1]: the example's own position, then K negatives) is
    required: train_student.py --distill crd always passes CIFAR100InstanceSample's
    (sample_contrast_indices below), so the source's uniform AliasMethod draw for idx=None is
    not transcribed. Z_v1 and Z_v2 read the source's params[2] and params[3]."""
    def __init__(self, inputSize, outputSize, K, T=0.07, momentum=0.5):
        super().__init__()
        self.nLem = outputSize
        self.K = K
        self.register_buffer('params', torch.tensor([K, T, -1, -1, momentum]))
        stdv = 1. / math.sqrt(inputSize / 3)
        self.register_buffer('memory_v1', torch.rand(outputSize, inputSize).mul_(2 * stdv).add_(-stdv))
        self.register_buffer('memory_v2', torch.rand(outputSize, inputSize).mul_(2 * stdv).add_(-stdv))

    @property
    def Z_v1(self):
        return self.params[2].item()

    @property
    def Z_v2(self):
        return self.params[3].item()

    def forward(self, v1, v2, y, idx):
        K = int(self.params[0].item())
        T = self.params[1].item()
        Z_v1 = self.params[2].item()
        Z_v2 = self.params[3].item()
        momentum = self.params[4].item()
        batchSize = v1.size(0)
        outputSize = self.memory_v1.size(0)
        inputSize = self.memory_v1.size(1)
        weight_v1 = torch.index_select(self.memory_v1, 0, idx.view(-1)).detach()
        weight_v1 = weight_v1.view(batchSize, K + 1, inputSize)
        out_v2 = torch.bmm(weight_v1, v2.view(batchSize, inputSize, 1))
        out_v2 = torch.exp(torch.div(out_v2, T))
        weight_v2 = torch.index_select(self.memory_v2, 0, idx.view(-1)).detach()
        weight_v2 = weight_v2.view(batchSize, K + 1, inputSize)
        out_v1 = torch.bmm(weight_v2, v1.view(batchSize, inputSize, 1))
        out_v1 = torch.exp(torch.div(out_v1, T))
        if Z_v1 < 0:
            self.params[2] = out_v1.mean() * outputSize
            Z_v1 = self.params[2].clone().detach().item()
        if Z_v2 < 0:
            self.params[3] = out_v2.mean() * outputSize
            Z_v2 = self.params[3].clone().detach().item()
        out_v1 = torch.div(out_v1, Z_v1).contiguous()
        out_v2 = torch.div(out_v2, Z_v2).contiguous()
        with torch.no_grad():
            l_pos = torch.index_select(self.memory_v1, 0, y.view(-1))
            l_pos.mul_(momentum)
            l_pos.add_(torch.mul(v1, 1 - momentum))
            l_norm = l_pos.pow(2).sum(1, keepdim=True).pow(0.5)
            updated_v1 = l_pos.div(l_norm)
            self.memory_v1.index_copy_(0, y, updated_v1)
            ab_pos = torch.index_select(self.memory_v2, 0, y.view(-1))
            ab_pos.mul_(momentum)
            ab_pos.add_(torch.mul(v2, 1 - momentum))
            ab_norm = ab_pos.pow(2).sum(1, keepdim=True).pow(0.5)
            updated_v2 = ab_pos.div(ab_norm)
            self.memory_v2.index_copy_(0, y, updated_v2)
        return out_v1, out_v2


def class_negatives(labels, num_classes):
    """CIFAR100InstanceSample.__init__'s cls_negative (dataset/cifar100.py lines 116-128): for each
    class, the positions of the examples of every other class."""
    cls_positive = [[] for i in range(num_classes)]
    for i in range(len(labels)):
        cls_positive[labels[i]].append(i)
    cls_negative = [[] for i in range(num_classes)]
    for i in range(num_classes):
        for j in range(num_classes):
            if j == i:
                continue
            cls_negative[i].extend(cls_positive[j])
    return [np.asarray(cls_negative[i]) for i in range(num_classes)]


def sample_contrast_indices(index, target, cls_negative, k):
    """CIFAR100InstanceSample.__getitem__'s sample_idx in mode 'exact' (dataset/cifar100.py lines
    159-168), for one example: its own position, then k of other classes, uniform, without
    replacement unless the other classes have fewer than k."""
    pos_idx = index
    replace = True if k > len(cls_negative[target]) else False
    neg_idx = np.random.choice(cls_negative[target], k, replace=replace)
    return np.hstack((np.asarray([pos_idx]), neg_idx))


# ---- mdistiller mdistiller/distillers/OFD.py ----------------------------------------------

def torch_feat_loss(source, target, margin):
    """feat_loss, lines 11-19."""
    margin = margin.to(source)
    loss = (
        (source - margin) ** 2 * ((source > margin) & (target <= margin)).float()
        + (source - target) ** 2 * ((source > target) & (target > margin) & (target <= 0)).float()
        + (source - target) ** 2 * (target > 0).float()
    )
    return torch.abs(loss).mean(dim=0).sum()


def build_feature_connector(t_channel, s_channel, kernel_size):
    """ConnectorConvBN._build_feature_connector, lines 41-60."""
    C = [nn.Conv2d(s_channel, t_channel, kernel_size=kernel_size, stride=1, padding=(kernel_size - 1) // 2,
                   bias=False),
         nn.BatchNorm2d(t_channel)]
    for m in C:
        if isinstance(m, nn.Conv2d):
            n = m.kernel_size[0] * m.kernel_size[1] * m.out_channels
            m.weight.data.normal_(0, math.sqrt(2.0 / n))
        elif isinstance(m, nn.BatchNorm2d):
            m.weight.data.fill_(1)
            m.bias.data.zero_()
    return nn.Sequential(*C)


class ConnectorConvBN(nn.Module):
    """ConnectorConvBN, lines 22-67 (its state dict: connectors.i.0.weight, connectors.i.1.*)."""
    def __init__(self, s_channels, t_channels, kernel_size=1):
        super().__init__()
        assert len(s_channels) == len(t_channels), "unequal length of feat list"
        self.connectors = nn.ModuleList([build_feature_connector(t, s, kernel_size)
                                         for t, s in zip(t_channels, s_channels)])


def margins_of(bn_before_relu):
    """init_ofd_modules' margins, lines 92-109 (scipy's norm.cdf, in float64)."""
    margins = []
    for bn in bn_before_relu:
        margin = []
        std = bn.weight.data
        mean = bn.bias.data
        for (s, m) in zip(std, mean):
            s = abs(s.item())
            m = m.item()
            if norm.cdf(-m / s) > 0.001:
                margin.append(-s * math.exp(-((m / s) ** 2) / 2) / math.sqrt(2 * math.pi) / norm.cdf(-m / s) + m)
            else:
                margin.append(-3 * s)
        margin = torch.FloatTensor(margin).to(std.device)
        margins.append(margin.unsqueeze(1).unsqueeze(2).unsqueeze(0).detach())
    return margins


def align_list(*input_list):
    """OFD._align_list, lines 163-165."""
    min_len = min([len(l) for l in input_list])  # noqa: E741
    return [l[-min_len:] for l in input_list]  # noqa: E741


def torch_ofd_loss(connectors, margins, feature_student, feature_teacher):
    """OFD.ofd_loss, lines 142-161."""
    feature_student, feature_teacher = align_list(feature_student, feature_teacher)
    feature_student = [connectors.connectors[idx](feat) for idx, feat in enumerate(feature_student)]
    loss_distill = 0
    feat_num = len(feature_student)
    for i in range(feat_num):
        loss_distill = loss_distill + torch_feat_loss(
            feature_student[i], F.adaptive_avg_pool2d(feature_teacher[i], feature_student[i].shape[-2:]).detach(),
            margins[i]) / 2 ** (feat_num - i - 1)
    return loss_distill


# ---- mdistiller mdistiller/distillers/DKD.py ----------------------------------------------

def _get_gt_mask(logits, target):
    """Lines 35-38."""
    target = target.reshape(-1)
    return torch.zeros_like(logits).scatter_(1, target.unsqueeze(1), 1).bool()


def _get_other_mask(logits, target):
    """Lines 41-44."""
    target = target.reshape(-1)
    return torch.ones_like(logits).scatter_(1, target.unsqueeze(1), 0).bool()


def cat_mask(t, mask1, mask2):
    """Lines 47-51."""
    t1 = (t * mask1).sum(dim=1, keepdims=True)
    t2 = (t * mask2).sum(1, keepdims=True)
    return torch.cat([t1, t2], dim=1)


def dkd_loss(logits_student, logits_teacher, target, alpha, beta, temperature):
    """Lines 8-32. `size_average=False` is the deprecated spelling of reduction='sum'."""
    gt_mask = _get_gt_mask(logits_student, target)
    other_mask = _get_other_mask(logits_student, target)
    pred_student = F.softmax(logits_student / temperature, dim=1)
    pred_teacher = F.softmax(logits_teacher / temperature, dim=1)
    pred_student = cat_mask(pred_student, gt_mask, other_mask)
    pred_teacher = cat_mask(pred_teacher, gt_mask, other_mask)
    log_pred_student = torch.log(pred_student)
    tckd_loss = F.kl_div(log_pred_student, pred_teacher, reduction='sum') * (temperature**2) / target.shape[0]
    pred_teacher_part2 = F.softmax(logits_teacher / temperature - 1000.0 * gt_mask, dim=1)
    log_pred_student_part2 = F.log_softmax(logits_student / temperature - 1000.0 * gt_mask, dim=1)
    nckd_loss = (F.kl_div(log_pred_student_part2, pred_teacher_part2, reduction='sum')
                 * (temperature**2) / target.shape[0])
    return alpha * tckd_loss + beta * nckd_loss


def dkd_forward_train(logits_student, logits_teacher, target, epoch, settings):
    """DKD.forward_train's losses_dict (lines 65-84), from the logits on; `settings` holds
    cfg.DKD's CE_WEIGHT, ALPHA, BETA, T and WARMUP under this project's names (ce_weight, alpha,
    beta, temperature, warmup), `epoch` counted from 1 as mdistiller's trainer passes it."""
    loss_ce = settings['ce_weight'] * F.cross_entropy(logits_student, target)
    loss_dkd = min(epoch / settings['warmup'], 1.0) * dkd_loss(
        logits_student, logits_teacher, target, settings['alpha'], settings['beta'], settings['temperature'])
    return {'loss_ce': loss_ce, 'loss_kd': loss_dkd}


# ---- bellymonster/Weighted-Soft-Label-Distillation knowledge_distiller.py -----------------

def wsld_forward(fc_s, fc_t, label, T, alpha, num_classes=None, detach=True):
    """WSLDistiller.forward (lines 53-85) from the logits on; returns (hard_loss,
    alpha * soft_loss), whose sum is the source's loss. The source's nn.LogSoftmax() has no dim:
    torch's implicit choice for a 2-D input is dim=1. num_classes is 1000 there (ImageNet), here
    the logits' width unless given; the hard loss is plain cross-entropy (the source's choice
    with label smoothing off, imagenet_train_cfg.py). detach=False, not the source, only shows
    that its .detach() matters."""
    softmax, logsoftmax = nn.Softmax(dim=1), nn.LogSoftmax(dim=1)
    num_classes = fc_s.shape[1] if num_classes is None else num_classes
    s_input_for_softmax = fc_s / T
    t_input_for_softmax = fc_t / T
    t_soft_label = softmax(t_input_for_softmax)
    softmax_loss = - torch.sum(t_soft_label * logsoftmax(s_input_for_softmax), 1, keepdim=True)
    fc_s_auto = fc_s.detach() if detach else fc_s
    fc_t_auto = fc_t.detach() if detach else fc_t
    log_softmax_s = logsoftmax(fc_s_auto)
    log_softmax_t = logsoftmax(fc_t_auto)
    one_hot_label = F.one_hot(label, num_classes=num_classes).float()
    softmax_loss_s = - torch.sum(one_hot_label * log_softmax_s, 1, keepdim=True)
    softmax_loss_t = - torch.sum(one_hot_label * log_softmax_t, 1, keepdim=True)
    focal_weight = softmax_loss_s / (softmax_loss_t + 1e-7)
    ratio_lower = torch.zeros(1, device=fc_s.device)
    focal_weight = torch.max(focal_weight, ratio_lower)
    focal_weight = 1 - torch.exp(- focal_weight)
    softmax_loss = focal_weight * softmax_loss
    soft_loss = (T ** 2) * torch.mean(softmax_loss)
    hard_loss = nn.CrossEntropyLoss()(fc_s, label)
    return hard_loss, alpha * soft_loss
