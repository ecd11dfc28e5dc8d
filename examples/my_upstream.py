"""A complete custom upstream: `superb check-upstream examples/my_upstream.py:MyUpstream`."""
import torch
from torch import nn

from superb.upstream import Upstream, UpstreamOutput, conv_output_lengths


class MyUpstream(Upstream):
    """Strided-conv encoder + 2 MLP layers: 3 hidden states, 20 ms frames."""

    downsample_rate = 320  # 16 kHz samples per output frame
    FRAMING = [(400, 320)]  # (kernel, stride) of the unpadded convolution

    def __init__(self, ckpt=None, dim: int = 64):
        super().__init__()
        self.conv = nn.Conv1d(1, dim, kernel_size=400, stride=320)
        self.layers = nn.ModuleList(nn.Linear(dim, dim) for _ in range(2))
        if ckpt is not None:  # --upstream-ckpt: a state_dict saved with torch.save
            self.load_state_dict(torch.load(ckpt, map_location="cpu", weights_only=True))

    @property
    def hidden_sizes(self):
        return [self.conv.out_channels] * (1 + len(self.layers))

    def forward(self, wavs, wav_lens):
        self.check_input(wavs, wav_lens)
        x = self.conv(wavs.unsqueeze(1)).transpose(1, 2)  # [B, T', dim]
        hidden = [x]
        for layer in self.layers:
            x = torch.tanh(layer(x))
            hidden.append(x)
        return UpstreamOutput(hidden, conv_output_lengths(wav_lens, self.FRAMING))
