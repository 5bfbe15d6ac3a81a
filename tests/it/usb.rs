//! `rsrec devices --usb`: the USB and bandwidth report from the fixture sysfs trees of
//! `fixtures/sysfs/` (see its README), as text and as JSON.

use crate::common;

use common::{p, rsrec, stderr, stdout};

use serde_json::Value;
use std::path::PathBuf;

fn tree(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures/sysfs")
        .join(name)
}

/// `rsrec devices --sysfs TREE --json`: the whole object, after checking the exit code.
fn usb_json(name: &str) -> Value {
    let o = rsrec(&["devices", "--sysfs", p(&tree(name)), "--json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: Value = serde_json::from_slice(&o.stdout).expect("JSON on stdout");
    // librealsense's cameras: none in a build without it, whatever is plugged in with it.
    if cfg!(feature = "realsense") {
        assert!(v["cameras"].is_array(), "{v:#}");
    } else {
        assert!(v["cameras"].is_null(), "{v:#}");
    }
    v
}

fn usb_text(name: &str) -> String {
    let o = rsrec(&["devices", "--sysfs", p(&tree(name))]);
    assert!(o.status.success(), "{}", stderr(&o));
    stdout(&o)
}

fn warnings(v: &Value) -> Vec<String> {
    v["usb"]["warnings"]
        .as_array()
        .expect("warnings")
        .iter()
        .map(|w| w.as_str().unwrap().to_string())
        .collect()
}

fn one<'a>(warnings: &'a [String], needle: &str) -> &'a str {
    let hits: Vec<&String> = warnings.iter().filter(|w| w.contains(needle)).collect();
    assert_eq!(
        hits.len(),
        1,
        "one warning with {needle:?} in {warnings:#?}"
    );
    hits[0]
}

#[test]
fn mixed_rig_json_lists_cameras_controllers_and_warnings() {
    let v = usb_json("rig-mixed");
    let usb = &v["usb"];
    assert_eq!(usb["status"], "ok");
    assert_eq!(usb["summary"], "5 RealSense cameras on 2 USB controllers");
    assert_eq!(usb["usbfs_memory_mb"], 16);
    assert_eq!(usb["modes"]["depth"], "848x480@30");
    assert_eq!(usb["modes"]["color"], "640x480@30");
    let cams = usb["cameras"].as_array().unwrap();
    let ports: Vec<&str> = cams.iter().map(|c| c["port"].as_str().unwrap()).collect();
    // The webcam, the hubs and the T265 tracking camera (8086:0b37) are ignored.
    assert_eq!(ports, ["1-3", "2-1", "2-2.1", "3-2", "4-1"]);
    let c = &cams[0];
    assert_eq!(c["model"], "D435I");
    assert_eq!(c["product_id"], "0b3a");
    assert_eq!(c["usb_serial"], "926623051347");
    assert_eq!(c["speed_mbps"], 480);
    assert_eq!(c["usb"], "USB 2 (480 Mbit/s)");
    assert_eq!(c["controller"], "xhci-hcd.0");
    assert_eq!(c["root_hub"], "usb1");
    assert_eq!(c["mb_per_s"], 42.9);
    assert_eq!(c["streams"]["depth"], "848x480@30");
    // A missing attribute is unknown.
    assert!(cams[4]["usb_serial"].is_null());
    assert_eq!(cams[4]["controller"], "3610000.xhci");

    let ctrls = usb["controllers"].as_array().unwrap();
    let ids: Vec<&str> = ctrls.iter().map(|c| c["id"].as_str().unwrap()).collect();
    assert_eq!(ids, ["xhci-hcd.0", "3610000.xhci", "xhci-hcd.1"]);
    assert_eq!(ctrls[0]["cameras"], 3);
    assert_eq!(ctrls[0]["load_mb_s"], 128.6);
    let bus2 = &ctrls[0]["buses"][1];
    assert_eq!(bus2["busnum"], 2);
    assert_eq!(bus2["speed_mbps"], 5000);
    assert_eq!(bus2["capacity_mb_s"], 400.0);
    assert_eq!(bus2["cameras"], serde_json::json!(["2-1", "2-2.1"]));
    assert_eq!(bus2["load_mb_s"], 85.7);
    assert_eq!(ctrls[2]["cameras"], 0);

    let w = warnings(&v);
    assert_eq!(w.len(), 3, "{w:#?}");
    let usb2 = one(&w, "USB port 1-3");
    assert!(
        usb2.starts_with(
            "the D435I at USB port 1-3 (USB serial 926623051347) is connected at USB 2 (480 \
             Mbit/s): a D4xx camera on USB 2 streams only reduced modes and frame rates"
        ),
        "{usb2}"
    );
    assert!(usb2.contains("Fix: a USB 3 port"), "{usb2}");
    let old_fw = one(&w, "USB port 3-2");
    assert!(
        old_fw.starts_with("the D4xx (enumerated as USB2) at USB port 3-2"),
        "{old_fw}"
    );
    let usbfs = one(
        &w,
        "usbfs_memory_mb is 16 (the Linux default) with 5 RealSense cameras",
    );
    assert!(
        usbfs.contains("`echo 1000 | sudo tee /sys/module/usbcore/parameters/usbfs_memory_mb`"),
        "{usbfs}"
    );
    assert!(usbfs.contains("`usbcore.usbfs_memory_mb=1000`"), "{usbfs}");
}

#[test]
fn mixed_rig_text_shows_links_controllers_and_warnings() {
    let t = usb_text("rig-mixed");
    // (With librealsense, its listing or "no RealSense devices found" comes first.)
    assert!(t.contains("USB (sysfs /"), "{t}");
    assert!(
        t.contains("estimates at 848x480@30 depth + 640x480@30 colour per camera"),
        "{t}"
    );
    assert!(
        t.contains("\n  5 RealSense cameras on 2 USB controllers\n"),
        "{t}"
    );
    assert!(
        t.contains(
            "\n  1-3       D435I  USB 2 (480 Mbit/s)   controller xhci-hcd.0, bus 1  USB serial \
             926623051347  42.9 MB/s\n"
        ),
        "{t}"
    );
    assert!(
        t.contains("\n  2-2.1     D435I  USB 3 (5 Gbit/s)     controller xhci-hcd.0, bus 2 (through a hub)"),
        "{t}"
    );
    assert!(
        t.contains("\n  controller xhci-hcd.0: 3 cameras, 128.6 MB/s\n"),
        "{t}"
    );
    assert!(
        t.contains("\n    bus 2   USB 3 (5 Gbit/s)     2 cameras 85.7 of ~400 MB/s (21 %)\n"),
        "{t}"
    );
    assert!(t.contains("\n  controller xhci-hcd.1: no camera\n"), "{t}");
    assert!(t.contains("\n  usbfs_memory_mb: 16\n"), "{t}");
    assert_eq!(t.matches("\n  WARNING: ").count(), 3, "{t}");
    assert!(t.contains("\n  WARNING: the D435I at USB port 1-3"), "{t}");
    assert!(t.contains("\n  WARNING: usbfs_memory_mb is 16"), "{t}");
}

#[test]
fn eight_cameras_on_one_controller_are_one_warning() {
    let v = usb_json("eight-on-one-controller");
    assert_eq!(v["usb"]["usbfs_memory_mb"], 1000);
    assert_eq!(v["usb"]["controllers"][0]["cameras"], 8);
    assert_eq!(v["usb"]["controllers"][0]["load_mb_s"], 342.8);
    let w = warnings(&v);
    assert_eq!(w.len(), 1, "{w:#?}");
    assert!(
        w[0].starts_with(
            "controller xhci-hcd.0 carries 8 cameras and 342.8 MB/s of its ~400 MB/s (86 %) on \
             bus 2, USB 3 (5 Gbit/s): over 75 % of what such a bus carries in practice"
        ),
        "{}",
        w[0]
    );
    assert!(
        w[0].contains("controllers without a camera: xhci-hcd.1 (5 Gbit/s)"),
        "{}",
        w[0]
    );
    let t = usb_text("eight-on-one-controller");
    assert!(
        t.contains("\n    bus 2   USB 3 (5 Gbit/s)     8 cameras 342.8 of ~400 MB/s (86 %)\n"),
        "{t}"
    );
    assert_eq!(
        t.matches("WARNING: controller xhci-hcd.0 carries 8 cameras")
            .count(),
        1
    );
}

#[test]
fn healthy_and_empty_trees_have_no_warnings() {
    let v = usb_json("one-camera");
    assert_eq!(v["usb"]["status"], "ok");
    assert_eq!(v["usb"]["cameras"].as_array().unwrap().len(), 1);
    // One camera: the default usbfs limit is enough.
    assert_eq!(v["usb"]["usbfs_memory_mb"], 16);
    assert!(warnings(&v).is_empty(), "{v:#}");
    assert!(!usb_text("one-camera").contains("WARNING"));

    let v = usb_json("no-realsense");
    assert_eq!(v["usb"]["status"], "no_realsense_camera");
    assert!(v["usb"]["cameras"].as_array().unwrap().is_empty());
    assert!(warnings(&v).is_empty(), "{v:#}");
    let t = usb_text("no-realsense");
    assert!(t.contains("\n  no RealSense D4xx camera in "), "{t}");
    assert!(!t.contains("WARNING"), "{t}");
}

#[test]
fn a_missing_sysfs_is_reported_not_an_error() {
    let v = usb_json("does-not-exist");
    assert_eq!(v["usb"]["status"], "unreadable");
    assert!(v["usb"]["usbfs_memory_mb"].is_null());
    assert!(
        v["usb"]["summary"]
            .as_str()
            .unwrap()
            .contains("cannot be read (not Linux, or a container"),
        "{v:#}"
    );
    assert!(warnings(&v).is_empty());
    let t = usb_text("does-not-exist");
    assert!(t.contains("cannot be read (not Linux"), "{t}");
}

#[test]
fn devices_json_keeps_its_shape_without_usb() {
    let o = rsrec(&["devices", "--json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    if cfg!(feature = "realsense") {
        // The array of librealsense's cameras, as before (`[]` without one).
        assert!(v.is_array(), "{v:#}");
    } else {
        // Without librealsense there is only the USB report.
        assert!(v["cameras"].is_null(), "{v:#}");
        assert!(v["usb"]["status"].is_string(), "{v:#}");
        assert!(
            stderr(&o).contains("no RealSense support"),
            "{}",
            stderr(&o)
        );
    }
}
