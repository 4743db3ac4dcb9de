"""A vispy Volume visual with the reference caster's lit compositing, drawn on the GPU.

Method ``'shaded'`` (added to vispy's ``translucent``, ``mip`` …) composites front to back like
:func:`engines.volume.raycast.render`:

- value → colour and opacity from the 1-D TF colormap (uploaded *without* opacity correction),
  or from a 2-D TF lookup texture over (value, |∇v|) when one is set;
- gradient by central differences (one voxel either side), converted to value units per mm with
  the voxel spacing; gradient opacity α·α_g(|∇v|) from a lookup texture;
- opacity correction α' = 1 − (1 − α)^(Δs / Δs₀) in the shader, with Δs this ray's actual step
  in mm (vispy steps in voxel units, so it varies with direction at anisotropic spacing) and
  Δs₀ the TF's reference step times the smallest voxel size, as in the caster;
- Slicer's material with a headlight, two-sided like the caster:
  ``c·(ambient + diffuse·|n·l|) + specular·|n·l|^power``;
- early termination at 0.99.
"""

from __future__ import annotations

import numpy as np
from vispy import gloo, scene
from vispy.visuals.volume import _FRAGMENT_SHADER, VolumeVisual

_UNIFORMS = """
uniform sampler2D u_gradient_lut;   // 256 x 1: gradient-opacity factor over |grad v| in [0, u_gmax]
uniform sampler2D u_tf2d;           // 2-D TF: x = normalised value, y = |grad v| / u_gmax
uniform vec3 u_spacing;             // voxel size (x, y, z) mm
uniform float u_value_scale;        // data units per normalised unit (clim width)
uniform float u_gmax;               // |grad v| (data units / mm) at the top of the lookup textures
uniform float u_per_mm;             // 1 / (reference step in mm): opacity correction per mm of ray
uniform float u_shade;              // 1 = lit
uniform float u_use_tf2d;           // 1 = colour and opacity from u_tf2d
uniform float u_use_gradient_opacity;
uniform vec4 u_material;            // ambient, diffuse, specular, power
"""

_SHADED_SNIPPETS = dict(
    before_loop="""
        vec3 accumulated = vec3(0.0);
        float opacity = 0.0;
        vec3 dstep = 1.0 / u_shape;
        vec3 light = normalize(u_spacing * view_ray);  // headlight, world directions
        float exponent = length(step * u_shape * u_spacing) * u_per_mm;  // this ray's step in mm / reference
        """,
    in_loop="""
        float vx1 = colorToVal($get_data(loc + vec3(dstep.x, 0.0, 0.0)));
        float vx0 = colorToVal($get_data(loc - vec3(dstep.x, 0.0, 0.0)));
        float vy1 = colorToVal($get_data(loc + vec3(0.0, dstep.y, 0.0)));
        float vy0 = colorToVal($get_data(loc - vec3(0.0, dstep.y, 0.0)));
        float vz1 = colorToVal($get_data(loc + vec3(0.0, 0.0, dstep.z)));
        float vz0 = colorToVal($get_data(loc - vec3(0.0, 0.0, dstep.z)));
        vec3 grad = 0.5 * vec3(vx1 - vx0, vy1 - vy0, vz1 - vz0) * u_value_scale / u_spacing;
        float gmag = length(grad);
        vec4 sample_rgba;
        if (u_use_tf2d > 0.5) {
            sample_rgba = texture2D(u_tf2d, vec2(clamp(val, 0.0, 1.0), clamp(gmag / u_gmax, 0.0, 1.0)));
        } else {
            sample_rgba = applyColormap(color);
            if (u_use_gradient_opacity > 0.5) {
                sample_rgba.a *= texture2D(u_gradient_lut, vec2(clamp(gmag / u_gmax, 0.0, 1.0), 0.5)).r;
            }
        }
        float alpha = 1.0 - pow(1.0 - clamp(sample_rgba.a, 0.0, 1.0), exponent);
        vec3 rgb = sample_rgba.rgb;
        if (u_shade > 0.5) {
            float ndotl = 1.0;
            if (gmag > 1e-6) {
                ndotl = abs(dot(-grad / gmag, light));
            }
            rgb = rgb * (u_material.x + u_material.y * ndotl) + u_material.z * pow(ndotl, u_material.w);
        }
        accumulated += (1.0 - opacity) * alpha * rgb;
        opacity += (1.0 - opacity) * alpha;
        if (opacity > 0.99) {
            iter = nsteps;
        }
        """,
    after_loop="""
        if (opacity < 1e-4) {
            discard;
        }
        gl_FragColor = vec4(clamp(accumulated / opacity, 0.0, 1.0), opacity);
        """,
)


class ShadedVolumeVisual(VolumeVisual):
    """vispy's VolumeVisual plus the ``'shaded'`` method (see the module docstring)."""

    _rendering_methods = {**VolumeVisual._rendering_methods, "shaded": _SHADED_SNIPPETS}
    _shaders = {**VolumeVisual._shaders, "fragment": _FRAGMENT_SHADER.replace("// uniforms\n", "// uniforms\n" + _UNIFORMS, 1)}

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.set_lighting()

    def set_lighting(self, *, spacing=(1.0, 1.0, 1.0), value_scale: float = 1.0, gmax: float = 1.0, reference_step: float = 1.0,
                     shade: bool = False, material=(0.1, 0.9, 0.2, 10.0), gradient_lut=None, tf2d=None) -> None:
        """Uniforms and lookup textures of the ``'shaded'`` method. ``spacing`` is (z, y, x) mm;
        ``reference_step`` the TF's Δs₀ in voxels; ``gradient_lut`` 256 factors over |∇v| ∈ [0, gmax]; ``tf2d`` an (n_g, n_v, 4) RGBA table
        over value (columns, the clim range) × |∇v| (rows, 0 … gmax)."""
        program = self.shared_program
        sz, sy, sx = (float(s) for s in spacing)
        program["u_spacing"] = (sx, sy, sz)
        program["u_value_scale"] = float(value_scale)
        program["u_gmax"] = max(float(gmax), 1e-12)
        program["u_per_mm"] = 1.0 / (float(reference_step) * min(sx, sy, sz))
        program["u_shade"] = 1.0 if shade else 0.0
        program["u_material"] = tuple(float(v) for v in material)
        lut = np.ones((1, 256), np.float32) if gradient_lut is None else np.asarray(gradient_lut, np.float32).reshape(1, -1)
        program["u_use_gradient_opacity"] = 0.0 if gradient_lut is None else 1.0
        program["u_gradient_lut"] = gloo.Texture2D(lut[..., None].repeat(4, axis=-1), interpolation="linear",
                                                   internalformat="rgba32f")
        table = np.zeros((2, 2, 4), np.float32) if tf2d is None else np.ascontiguousarray(tf2d, dtype=np.float32)
        program["u_use_tf2d"] = 0.0 if tf2d is None else 1.0
        program["u_tf2d"] = gloo.Texture2D(table, interpolation="linear", internalformat="rgba32f")
        self.update()


#: a scene node for :class:`ShadedVolumeVisual` (like ``scene.visuals.Volume``)
ShadedVolume = scene.visuals.create_visual_node(ShadedVolumeVisual)
