//! One librealsense context shared by the cameras of a rig ([`RealSenseContext`]).
//!
//! Why: a context per camera meant that opening 8 cameras created every connected device
//! from every context (about 64 device creations, talking to cameras that are already
//! streaming), and each reconnect attempt of an unplugged camera created all of them again
//! every second. One context lists the devices once; its single devices-changed callback
//! tells each open camera when it was removed, and counts additions so that a camera waiting
//! to come back looks at the device list only when something was plugged in.

use std::sync::{Mutex, Weak};

use super::*;

/// A librealsense context for several cameras. Cheap to clone (shared).
#[derive(Clone)]
pub struct RealSenseContext(pub(super) Arc<Hub>);

pub(super) struct Hub {
    // Field order is drop order: the context (and with it the callback's thread) goes
    // before what the callback reads.
    pub(super) ctx: Context,
    /// The open cameras of this context (their callback state).
    watchers: Mutex<Vec<Weak<Shared>>>,
    /// Devices-changed events that added a device, since the context was made.
    pub(super) added: AtomicU64,
}

impl RealSenseContext {
    /// A new context with its devices-changed callback.
    pub fn new() -> Result<RealSenseContext, SourceError> {
        let hub = Arc::new(Hub {
            ctx: Context::new().map_err(SourceError::Open)?,
            watchers: Mutex::new(Vec::new()),
            added: AtomicU64::new(0),
        });
        // SAFETY: the callback gets a pointer to the hub, which outlives the context (the
        // context is the hub's first field: deleted, with its callback thread, before the
        // rest of the hub).
        unsafe {
            rs2!(rs2_set_devices_changed_callback(
                hub.ctx.ptr(),
                Some(devices_changed),
                Arc::as_ptr(&hub) as *mut c_void
            ))
        }
        .map_err(SourceError::Open)?;
        Ok(RealSenseContext(hub))
    }

    /// Serial numbers of the connected cameras, sorted (creates each device once).
    pub fn serials(&self) -> Result<Vec<String>, SourceError> {
        let mut serials: Vec<String> = query_devices(&self.0.ctx)
            .map_err(SourceError::Open)?
            .into_iter()
            .map(|(s, _)| s)
            .collect();
        serials.sort();
        serials.dedup();
        Ok(serials)
    }

    /// Devices plugged in since the context was made (devices-changed events that added
    /// one).
    pub(super) fn additions(&self) -> u64 {
        self.0.added.load(Ordering::SeqCst)
    }

    /// `shared`'s camera is told when librealsense reports its device removed.
    pub(super) fn watch(&self, shared: &Arc<Shared>) {
        let mut w = self.0.watchers.lock().unwrap_or_else(|e| e.into_inner());
        w.retain(|s| s.strong_count() > 0);
        w.push(Arc::downgrade(shared));
    }
}

/// librealsense's devices-changed callback: marks the removed cameras, counts additions.
unsafe extern "C" fn devices_changed(
    removed: *mut sys::rs2_device_list,
    added: *mut sys::rs2_device_list,
    user: *mut c_void,
) {
    if !user.is_null() {
        // SAFETY: `user` is the hub registered with the context, alive until the context is
        // deleted.
        let hub = &*(user as *const Hub);
        let _ = std::panic::catch_unwind(AssertUnwindSafe(|| {
            if !added.is_null() && rs2!(rs2_get_device_count(added)).unwrap_or(0) > 0 {
                hub.added.fetch_add(1, Ordering::SeqCst);
            }
            if removed.is_null() {
                return;
            }
            let watchers: Vec<Arc<Shared>> = hub
                .watchers
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .iter()
                .filter_map(Weak::upgrade)
                .collect();
            for shared in watchers {
                let device = shared.device.lock().unwrap_or_else(|e| e.into_inner());
                if !device.0.is_null()
                    && rs2!(rs2_device_list_contains(removed, device.0)).unwrap_or(0) != 0
                {
                    shared.removed.store(true, Ordering::SeqCst);
                }
            }
        }));
    }
    // The callee owns both lists.
    if !removed.is_null() {
        sys::rs2_delete_device_list(removed);
    }
    if !added.is_null() {
        sys::rs2_delete_device_list(added);
    }
}
