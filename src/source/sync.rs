//! Checks of a hardware-synchronised rig, from what each camera reports (no librealsense
//! here): in a rig where any camera is a sync master or slave, every camera must run its
//! depth at the same rate, and colour auto-exposure priority must be off (with it on, the
//! colour sensor lowers its frame rate in low light, and colour falls out of step with depth).
//! Sources record both settings as device properties ([`PROP_SYNC_MODE`],
//! [`PROP_COLOR_AE_PRIORITY`]).

use super::SourceInfo;
use crate::container::StreamKind;

/// Device property: the depth sensor's `Inter Cam Sync Mode` (0 default, 1 master, 2 slave,
/// 3 full slave, 4..258 genlock).
pub const PROP_SYNC_MODE: &str = "inter_cam_sync_mode";
/// Device property: the colour sensor's `Auto Exposure Priority` (1 = on).
pub const PROP_COLOR_AE_PRIORITY: &str = "color_auto_exposure_priority";

fn property(info: &SourceInfo, key: &str) -> Option<f64> {
    info.device
        .properties
        .iter()
        .find(|(k, _)| k == key)
        .and_then(|(_, v)| v.trim().parse().ok())
}

/// Warnings for the cameras of one recording (`(name, info)`); empty when no camera is in a
/// sync mode or all is well.
pub fn check<'a>(cameras: impl IntoIterator<Item = (&'a str, &'a SourceInfo)>) -> Vec<String> {
    let cameras: Vec<(&str, &SourceInfo)> = cameras.into_iter().collect();
    let synced: Vec<&str> = cameras
        .iter()
        .filter(|(_, i)| property(i, PROP_SYNC_MODE).is_some_and(|m| m != 0.0))
        .map(|(n, _)| *n)
        .collect();
    if synced.is_empty() {
        return Vec::new();
    }
    let mut out = Vec::new();
    let rates: Vec<(&str, f64)> = cameras
        .iter()
        .filter_map(|(n, i)| i.stream(StreamKind::Depth).map(|d| (*n, d.fps)))
        .collect();
    if rates.windows(2).any(|w| w[0].1 != w[1].1) {
        out.push(format!(
            "a hardware-synchronised rig ({} in a sync mode) runs its cameras at different \
             depth rates ({}): synchronised cameras must all run at the same rate",
            synced.join(", "),
            rates
                .iter()
                .map(|(n, f)| format!("{n} {f} fps"))
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    for (name, info) in &cameras {
        if property(info, PROP_COLOR_AE_PRIORITY).is_some_and(|v| v != 0.0) {
            out.push(format!(
                "{name}: colour auto-exposure priority is on in a synchronised rig: in low light \
                 it lowers the colour frame rate and colour falls out of step (switch it off: \
                 --rs-option 'color:Auto Exposure Priority=0')"
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::container::{DeviceInfo, StreamDescriptor};

    fn cam(fps: f64, props: &[(&str, &str)]) -> SourceInfo {
        SourceInfo {
            name: String::new(),
            device: DeviceInfo {
                properties: props
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
                ..DeviceInfo::default()
            },
            streams: vec![StreamDescriptor::depth(0, 848, 480, fps)],
        }
    }

    #[test]
    fn unsynced_rigs_are_not_checked() {
        let (a, b) = (cam(30.0, &[]), cam(15.0, &[(PROP_COLOR_AE_PRIORITY, "1")]));
        assert!(check([("a", &a), ("b", &b)]).is_empty());
    }

    #[test]
    fn a_sync_rig_needs_one_rate_and_no_colour_ae_priority() {
        let a = cam(
            30.0,
            &[(PROP_SYNC_MODE, "1"), (PROP_COLOR_AE_PRIORITY, "0")],
        );
        let b = cam(
            15.0,
            &[(PROP_SYNC_MODE, "2"), (PROP_COLOR_AE_PRIORITY, "1")],
        );
        let w = check([("a", &a), ("b", &b)]);
        assert_eq!(w.len(), 2, "{w:?}");
        assert!(w[0].contains("a 30 fps, b 15 fps"), "{}", w[0]);
        assert!(
            w[1].starts_with("b: colour auto-exposure priority"),
            "{}",
            w[1]
        );
        let c = cam(30.0, &[(PROP_SYNC_MODE, "2")]);
        assert!(check([("a", &a), ("c", &c)]).is_empty());
    }
}
