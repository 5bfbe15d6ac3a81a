//! Finding FFmpeg, listing its encoders and choosing a colour codec that actually works.

use std::collections::BTreeSet;
use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::error::{FfmpegFailure, VideoError};
use super::process::{run_captured, RunError};

/// How long `-version` / `-encoders` may take.
const PROBE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long test-opening an encoder (one tiny frame) may take. Hardware encoders can take a
/// second or so to initialise; a hung driver must not hang `auto`.
const OPEN_TIMEOUT: Duration = Duration::from_secs(10);
/// The VAAPI render node tried by `auto` and `hevc_vaapi`.
pub const DEFAULT_VAAPI_DEVICE: &str = "/dev/dri/renderD128";

/// What [`probe`] learned about an FFmpeg binary.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FfmpegInfo {
    /// The binary that was run.
    pub path: PathBuf,
    /// The version string, e.g. `5.1.9-0+deb12u1` or `N-112345-gabcdef`.
    pub version: String,
    /// Names of all encoders `ffmpeg -encoders` lists (video, audio and subtitle).
    pub encoders: BTreeSet<String>,
}

impl FfmpegInfo {
    /// Whether `ffmpeg -encoders` lists `name` (which does not mean it can be opened).
    pub fn has_encoder(&self, name: &str) -> bool {
        self.encoders.contains(name)
    }
}

/// Runs `ffmpeg -hide_banner -version` and `ffmpeg -hide_banner -encoders`.
pub fn probe(ffmpeg: &Path) -> Result<FfmpegInfo, VideoError> {
    let version_out = run_probe(ffmpeg, &["-hide_banner", "-version"])?;
    let text = String::from_utf8_lossy(&version_out);
    let version = parse_version(&text).ok_or_else(|| VideoError::UnexpectedOutput {
        args: "-hide_banner -version".into(),
        detail: format!(
            "no `ffmpeg version` line (first line: {:?})",
            text.lines().next().unwrap_or("")
        ),
    })?;
    let encoders_out = run_probe(ffmpeg, &["-hide_banner", "-encoders"])?;
    let encoders = parse_encoders(&String::from_utf8_lossy(&encoders_out));
    if encoders.is_empty() {
        return Err(VideoError::UnexpectedOutput {
            args: "-hide_banner -encoders".into(),
            detail: "no encoders listed".into(),
        });
    }
    Ok(FfmpegInfo {
        path: ffmpeg.to_path_buf(),
        version,
        encoders,
    })
}

fn run_probe(ffmpeg: &Path, args: &[&str]) -> Result<Vec<u8>, VideoError> {
    let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    match run_captured(ffmpeg, &args, &[], PROBE_TIMEOUT) {
        Ok(c) => Ok(c.stdout),
        Err(RunError::Start(e)) => Err(e),
        Err(RunError::Failed(f)) => Err(VideoError::ProbeFailed {
            args: args.join(" "),
            source: f,
        }),
    }
}

/// `ffmpeg version 5.1.9-0+deb12u1 Copyright (c) ...` -> `5.1.9-0+deb12u1`.
fn parse_version(text: &str) -> Option<String> {
    text.lines().find_map(|line| {
        let rest = line.trim().strip_prefix("ffmpeg version ")?;
        rest.split_whitespace().next().map(str::to_string)
    })
}

/// Encoder names from `ffmpeg -encoders`: after the ` ------` separator, each line is
/// ` V....D name  description`.
fn parse_encoders(text: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let mut in_list = false;
    for line in text.lines() {
        let trimmed = line.trim();
        if !in_list {
            in_list = trimmed.starts_with("---");
            continue;
        }
        let mut parts = trimmed.split_whitespace();
        if let (Some(flags), Some(name)) = (parts.next(), parts.next()) {
            if flags.len() == 6 && flags.is_ascii() {
                names.insert(name.to_string());
            }
        }
    }
    names
}

/// Colour codecs, named as FFmpeg's encoders (plus `auto`).
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ColorCodec {
    #[serde(rename = "libx265")]
    Libx265,
    #[serde(rename = "libx264")]
    Libx264,
    #[serde(rename = "libsvtav1")]
    Libsvtav1,
    #[serde(rename = "hevc_nvenc")]
    HevcNvenc,
    #[serde(rename = "hevc_vaapi")]
    HevcVaapi,
    #[serde(rename = "hevc_qsv")]
    HevcQsv,
    /// The first working hardware HEVC encoder (NVENC, VAAPI, Quick Sync), else libx265.
    #[serde(rename = "auto")]
    Auto,
}

const CODEC_NAMES: &str = "libx265, libx264, libsvtav1, hevc_nvenc, hevc_vaapi, hevc_qsv, auto";

impl ColorCodec {
    /// Every value, `Auto` last.
    pub const ALL: [ColorCodec; 7] = [
        ColorCodec::Libx265,
        ColorCodec::Libx264,
        ColorCodec::Libsvtav1,
        ColorCodec::HevcNvenc,
        ColorCodec::HevcVaapi,
        ColorCodec::HevcQsv,
        ColorCodec::Auto,
    ];

    /// The hardware encoders `auto` tries, in this order, before falling back to libx265.
    pub const AUTO_HARDWARE_ORDER: [ColorCodec; 3] = [
        ColorCodec::HevcNvenc,
        ColorCodec::HevcVaapi,
        ColorCodec::HevcQsv,
    ];

    /// The FFmpeg encoder name (`auto` for [`ColorCodec::Auto`]).
    pub fn name(self) -> &'static str {
        match self {
            ColorCodec::Libx265 => "libx265",
            ColorCodec::Libx264 => "libx264",
            ColorCodec::Libsvtav1 => "libsvtav1",
            ColorCodec::HevcNvenc => "hevc_nvenc",
            ColorCodec::HevcVaapi => "hevc_vaapi",
            ColorCodec::HevcQsv => "hevc_qsv",
            ColorCodec::Auto => "auto",
        }
    }

    /// Whether this is a GPU / fixed-function encoder.
    pub fn is_hardware(self) -> bool {
        matches!(
            self,
            ColorCodec::HevcNvenc | ColorCodec::HevcVaapi | ColorCodec::HevcQsv
        )
    }

    /// The presets this encoder accepts (FFmpeg's own lists; empty: it takes none).
    pub fn presets(self) -> &'static [&'static str] {
        const X26X: &[&str] = &[
            "ultrafast",
            "superfast",
            "veryfast",
            "faster",
            "fast",
            "medium",
            "slow",
            "slower",
            "veryslow",
            "placebo",
        ];
        match self {
            ColorCodec::Libx265 | ColorCodec::Libx264 => X26X,
            ColorCodec::Libsvtav1 => &[
                "-1", "0", "1", "2", "3", "4", "5", "6", "7", "8", "9", "10", "11", "12", "13",
            ],
            ColorCodec::HevcNvenc => &[
                "p1",
                "p2",
                "p3",
                "p4",
                "p5",
                "p6",
                "p7",
                "slow",
                "medium",
                "fast",
                "hp",
                "hq",
                "bd",
                "ll",
                "llhq",
                "llhp",
                "lossless",
                "losslesshp",
                "default",
            ],
            ColorCodec::HevcQsv => &[
                "veryfast", "faster", "fast", "medium", "slow", "slower", "veryslow",
            ],
            ColorCodec::HevcVaapi => &[],
            // `auto` may end on any of them; the resolved encoder checks again.
            ColorCodec::Auto => X26X,
        }
    }

    /// Checks a `--preset` against [`ColorCodec::presets`] (exact names only, so nothing
    /// else ever reaches FFmpeg's command line).
    pub fn check_preset(self, preset: &str) -> Result<(), String> {
        let ok = self.presets();
        if ok.contains(&preset) {
            return Ok(());
        }
        Err(if ok.is_empty() {
            format!("{self} takes no preset")
        } else {
            format!("{preset:?} is not a {self} preset ({})", ok.join(", "))
        })
    }

    /// Checks a `--crf` against [`ColorCodec::max_quality`].
    pub fn check_quality(self, crf: u8) -> Result<(), String> {
        let max = self.max_quality();
        if crf > max {
            return Err(format!("{crf} is out of range for {self} (0..={max})"));
        }
        Ok(())
    }

    /// The next faster preset than `preset`, for a live recording whose encoder falls behind:
    /// x264/x265 one step towards `ultrafast`, SVT-AV1 one up towards 13, NVENC `pN` one down
    /// towards `p1`, QSV one step towards `veryfast`. `None` when `preset` is already the
    /// fastest, is not one of this encoder's ordered presets (NVENC's legacy names), or the
    /// encoder takes no presets.
    pub fn faster_preset(self, preset: &str) -> Option<&'static str> {
        let list = self.presets();
        let at = list.iter().position(|p| *p == preset)?;
        match self {
            // Listed fastest first.
            ColorCodec::Libx265 | ColorCodec::Libx264 | ColorCodec::HevcQsv | ColorCodec::Auto => {
                at.checked_sub(1).map(|i| list[i])
            }
            // "-1" (slowest) .. "13" (fastest).
            ColorCodec::Libsvtav1 => list.get(at + 1).copied(),
            // p1 (fastest) .. p7, then legacy names that have no order.
            ColorCodec::HevcNvenc => (1..=6).contains(&at).then(|| list[at - 1]),
            ColorCodec::HevcVaapi => None,
        }
    }

    /// The largest accepted quality value (`crf`, or its hardware equivalent).
    pub fn max_quality(self) -> u8 {
        match self {
            ColorCodec::Libsvtav1 => 63,
            _ => 51,
        }
    }
}

impl fmt::Display for ColorCodec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for ColorCodec {
    type Err = VideoError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let wanted = s.trim();
        ColorCodec::ALL
            .into_iter()
            .find(|c| c.name().eq_ignore_ascii_case(wanted))
            .ok_or_else(|| VideoError::UnknownCodec {
                name: s.to_string(),
                expected: CODEC_NAMES,
            })
    }
}

/// A concrete encoder that [`resolve`] has seen open and encode a frame.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResolvedCodec {
    codec: ColorCodec,
    requested: ColorCodec,
    vaapi_device: Option<PathBuf>,
    skipped: Vec<(ColorCodec, String)>,
}

impl ResolvedCodec {
    fn candidate(codec: ColorCodec, requested: ColorCodec) -> Self {
        ResolvedCodec {
            codec,
            requested,
            vaapi_device: (codec == ColorCodec::HevcVaapi).then(|| DEFAULT_VAAPI_DEVICE.into()),
            skipped: Vec::new(),
        }
    }

    /// The encoder to use (never [`ColorCodec::Auto`]).
    pub fn codec(&self) -> ColorCodec {
        self.codec
    }

    /// FFmpeg's name for it (`-c:v` value).
    pub fn encoder_name(&self) -> &'static str {
        self.codec.name()
    }

    /// What the user asked for (possibly `auto`).
    pub fn requested(&self) -> ColorCodec {
        self.requested
    }

    /// For `auto`: the hardware encoders passed over, each with the reason (for logs).
    pub fn skipped(&self) -> &[(ColorCodec, String)] {
        &self.skipped
    }

    /// Environment for the FFmpeg process (quietens SVT-AV1's own stderr logging).
    pub(crate) fn envs(&self) -> Vec<(&'static str, &'static str)> {
        match self.codec {
            ColorCodec::Libsvtav1 => vec![("SVT_LOG", "1")],
            _ => Vec::new(),
        }
    }

    /// Global options that must precede the input (hardware device set-up).
    pub(crate) fn global_args(&self) -> Vec<String> {
        match (&self.codec, &self.vaapi_device) {
            (ColorCodec::HevcVaapi, Some(dev)) => {
                vec!["-vaapi_device".into(), dev.to_string_lossy().into_owned()]
            }
            _ => Vec::new(),
        }
    }

    /// Output options: filters, encoder, quality, preset, colour tags.
    ///
    /// `convert_rgb` is true for RGB/BGR(A)/grey input: it is converted to limited-range
    /// BT.709 YUV explicitly and tagged so, so that every player decodes the same colours
    /// (FFmpeg's default would be untagged BT.601, which players guess differently). YUYV
    /// input is already YUV: only chroma is subsampled, and it is left untagged.
    pub(crate) fn output_args(
        &self,
        convert_rgb: bool,
        crf: Option<u8>,
        preset: Option<&str>,
    ) -> Vec<String> {
        let mut a: Vec<String> = Vec::new();
        let mut push = |items: &[&str]| a.extend(items.iter().map(|s| s.to_string()));
        let scale = "scale=out_color_matrix=bt709:out_range=tv";
        match self.codec {
            ColorCodec::HevcVaapi => {
                // Frames must be uploaded to the GPU; VAAPI wants NV12.
                let chain = if convert_rgb {
                    format!("{scale},format=nv12,hwupload")
                } else {
                    "format=nv12,hwupload".to_string()
                };
                push(&["-vf", &chain]);
            }
            codec => {
                if convert_rgb {
                    push(&["-vf", scale]);
                }
                let pix = if codec == ColorCodec::HevcQsv {
                    "nv12"
                } else {
                    "yuv420p"
                };
                push(&["-pix_fmt", pix]);
            }
        }
        push(&["-c:v", self.codec.name()]);
        if self.codec == ColorCodec::Libx265 {
            // x265 logs to stderr itself, bypassing -loglevel.
            push(&["-x265-params", "log-level=error"]);
        }
        if let Some(q) = crf {
            let q = q.to_string();
            match self.codec {
                ColorCodec::HevcNvenc => push(&["-rc", "vbr", "-cq", &q, "-b:v", "0"]),
                ColorCodec::HevcQsv => push(&["-global_quality", &q]),
                ColorCodec::HevcVaapi => push(&["-rc_mode", "CQP", "-qp", &q]),
                _ => push(&["-crf", &q]),
            }
        }
        if let Some(p) = preset {
            // hevc_vaapi has no presets.
            if self.codec != ColorCodec::HevcVaapi {
                push(&["-preset", p]);
            }
        }
        if convert_rgb {
            push(&[
                "-colorspace",
                "bt709",
                "-color_primaries",
                "bt709",
                "-color_trc",
                "bt709",
                "-color_range",
                "tv",
            ]);
        }
        a
    }
}

/// Why a candidate encoder cannot be used.
enum Unusable {
    NotListed,
    NoDevice(PathBuf),
    OpenFailed(FfmpegFailure),
}

impl Unusable {
    fn reason(&self) -> String {
        match self {
            Unusable::NotListed => "not listed by `ffmpeg -encoders`".into(),
            Unusable::NoDevice(dev) => format!("no device {}", dev.display()),
            Unusable::OpenFailed(f) => format!("listed, but failed to open: {f}"),
        }
    }
}

/// Chooses a working encoder. For `auto`, tries hardware encoders (NVENC, VAAPI, Quick Sync)
/// in that order and falls back to libx265. Being listed by `ffmpeg -encoders` is not enough
/// (most distribution builds list NVENC without a GPU): each candidate must encode one small
/// frame within a few seconds.
pub fn resolve(
    codec: ColorCodec,
    info: &FfmpegInfo,
    ffmpeg: &Path,
) -> Result<ResolvedCodec, VideoError> {
    if codec != ColorCodec::Auto {
        let candidate = ResolvedCodec::candidate(codec, codec);
        return match try_candidate(&candidate, info, ffmpeg)? {
            Ok(()) => Ok(candidate),
            Err(why) => Err(unavailable(codec.name().into(), &why, info, &[])),
        };
    }
    let mut skipped = Vec::new();
    for hw in ColorCodec::AUTO_HARDWARE_ORDER {
        let candidate = ResolvedCodec::candidate(hw, ColorCodec::Auto);
        match try_candidate(&candidate, info, ffmpeg)? {
            Ok(()) => {
                return Ok(ResolvedCodec {
                    skipped,
                    ..candidate
                })
            }
            Err(why) => skipped.push((hw, why.reason())),
        }
    }
    let candidate = ResolvedCodec::candidate(ColorCodec::Libx265, ColorCodec::Auto);
    match try_candidate(&candidate, info, ffmpeg)? {
        Ok(()) => Ok(ResolvedCodec {
            skipped,
            ..candidate
        }),
        Err(why) => Err(unavailable("auto (libx265)".into(), &why, info, &skipped)),
    }
}

fn unavailable(
    name: String,
    why: &Unusable,
    info: &FfmpegInfo,
    skipped: &[(ColorCodec, String)],
) -> VideoError {
    let listed: Vec<&str> = ColorCodec::ALL
        .iter()
        .map(|c| c.name())
        .filter(|n| info.has_encoder(n))
        .collect();
    let mut hint = match why {
        Unusable::OpenFailed(_) => "listed, but failed to open".to_string(),
        other => other.reason(),
    };
    hint.push_str(&format!(
        "; colour encoders listed by ffmpeg {}: {}",
        info.version,
        if listed.is_empty() {
            "none".to_string()
        } else {
            listed.join(", ")
        }
    ));
    for (c, reason) in skipped {
        hint.push_str(&format!("; {c}: {reason}"));
    }
    VideoError::EncoderUnavailable {
        name,
        available_hint: hint,
        source: match why {
            Unusable::OpenFailed(f) => Some(f.clone()),
            _ => None,
        },
    }
}

/// `Ok(Ok(()))` when the candidate encodes a frame; `Ok(Err(why))` when it cannot;
/// `Err` when FFmpeg itself cannot be run.
fn try_candidate(
    candidate: &ResolvedCodec,
    info: &FfmpegInfo,
    ffmpeg: &Path,
) -> Result<Result<(), Unusable>, VideoError> {
    if !info.has_encoder(candidate.encoder_name()) {
        return Ok(Err(Unusable::NotListed));
    }
    if let Some(dev) = &candidate.vaapi_device {
        if !dev.exists() {
            return Ok(Err(Unusable::NoDevice(dev.clone())));
        }
    }
    let mut args: Vec<String> = ["-hide_banner", "-nostdin", "-nostats", "-loglevel", "error"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    args.extend(candidate.global_args());
    // 256x256: above every hardware encoder's minimum frame size.
    args.extend(
        [
            "-f",
            "lavfi",
            "-i",
            "color=c=black:s=256x256:r=30:d=0.1",
            "-frames:v",
            "1",
        ]
        .iter()
        .map(|s| s.to_string()),
    );
    args.extend(candidate.output_args(true, None, None));
    args.extend(["-f", "null", "-"].iter().map(|s| s.to_string()));
    match run_captured(ffmpeg, &args, &candidate.envs(), OPEN_TIMEOUT) {
        Ok(_) => Ok(Ok(())),
        Err(RunError::Start(e)) => Err(e),
        Err(RunError::Failed(f)) => Ok(Err(Unusable::OpenFailed(f))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn faster_presets_step_towards_the_fastest_and_stop_there() {
        use ColorCodec::*;
        assert_eq!(Libx265.faster_preset("veryfast"), Some("superfast"));
        assert_eq!(Libx264.faster_preset("superfast"), Some("ultrafast"));
        assert_eq!(Libx264.faster_preset("ultrafast"), None);
        assert_eq!(Libsvtav1.faster_preset("10"), Some("11"));
        assert_eq!(Libsvtav1.faster_preset("13"), None);
        assert_eq!(HevcNvenc.faster_preset("p4"), Some("p3"));
        assert_eq!(HevcNvenc.faster_preset("p1"), None);
        assert_eq!(HevcNvenc.faster_preset("hq"), None);
        assert_eq!(HevcQsv.faster_preset("medium"), Some("fast"));
        assert_eq!(HevcQsv.faster_preset("veryfast"), None);
        assert_eq!(HevcVaapi.faster_preset("anything"), None);
        assert_eq!(Libx265.faster_preset("not-a-preset"), None);
        // Every step is a preset the encoder accepts.
        for c in ColorCodec::ALL {
            for p in c.presets() {
                if let Some(f) = c.faster_preset(p) {
                    assert!(c.check_preset(f).is_ok(), "{c}: {p} -> {f}");
                }
            }
        }
    }

    #[test]
    fn parses_version_and_encoders() {
        let v = "ffmpeg version 5.1.9-0+deb12u1 Copyright (c) 2000-2026 the FFmpeg developers\nbuilt with gcc 12\n";
        assert_eq!(parse_version(v).as_deref(), Some("5.1.9-0+deb12u1"));
        assert_eq!(parse_version("nonsense"), None);
        let e = "Encoders:\n V..... = Video\n A..... = Audio\n ------\n V....D libx265              libx265 H.265 / HEVC (codec hevc)\n V..... hevc_qsv             HEVC (Intel Quick Sync Video acceleration) (codec hevc)\n A....D aac                  AAC (Advanced Audio Coding)\n";
        let names = parse_encoders(e);
        assert_eq!(
            names.into_iter().collect::<Vec<_>>(),
            ["aac", "hevc_qsv", "libx265"]
        );
    }

    #[test]
    fn codec_names_round_trip() {
        for c in ColorCodec::ALL {
            assert_eq!(c.to_string().parse::<ColorCodec>().unwrap(), c);
            let json = serde_json::to_string(&c).unwrap();
            assert_eq!(json, format!("\"{c}\""));
        }
        assert_eq!(
            "LIBX264".parse::<ColorCodec>().unwrap(),
            ColorCodec::Libx264
        );
        assert!(matches!(
            "h264".parse::<ColorCodec>(),
            Err(VideoError::UnknownCodec { .. })
        ));
    }
}
