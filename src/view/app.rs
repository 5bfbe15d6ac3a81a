//! The viewer window (eframe/egui): thin glue between the [`Session`] model, the decoding
//! workers and the screen. Panels: notices on top, stream toggles and depth range on the
//! left, the info panel on the right, the timeline at the bottom, the cameras in the middle:
//! per camera a panel for each shown stream (depth, colour, infrared left and right).

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use crossbeam_channel::{bounded, Receiver};
use eframe::egui::{
    self, pos2, vec2, Align2, Color32, ColorImage, FontId, Key, Rect, Sense, Stroke, TextureHandle,
    TextureOptions,
};

use super::color::ColorSource;
use super::colormap::{colorize, Range};
use super::error::{Result, ViewError};
use super::model::{distance_label, format_time, parse_time, Session, Span};
use super::worker::{
    prefetch_plan, Decoded, DepthImage, DepthSource, FrameId, InfraredSource, Worker,
};
use crate::session::Stream;

/// How the window is started.
#[derive(Clone, Debug)]
pub struct Options {
    pub ffmpeg: PathBuf,
    /// Where the playhead starts (µs from the start of the session).
    pub start_at: i64,
    /// Print the panel rectangles and shown frames to stderr whenever they change.
    pub debug_layout: bool,
    /// Inner size of the window in points.
    pub size: [f32; 2],
}

/// The playback speeds offered.
const SPEEDS: [f64; 6] = [0.25, 0.5, 1.0, 2.0, 4.0, 8.0];
/// Frames kept decoded around the playhead, per camera and stream.
const KEEP: usize = 12;
/// Panels per camera, one per stream, in the order of [`Stream::ALL`] (see [`slot`]).
const SLOTS: usize = Stream::ALL.len();
/// The infrared streams, in the order of [`ViewerApp::ir_cache`].
const IR: [Stream; 2] = [Stream::IrLeft, Stream::IrRight];

/// Opens the window and runs until it is closed.
pub fn run(session: Session, opts: Options) -> Result<()> {
    let title = format!("rsrec view - {}", session.description);
    let native = eframe::NativeOptions {
        viewport: egui::ViewportBuilder::default()
            .with_title(title.clone())
            .with_inner_size(opts.size)
            .with_position([0.0, 0.0]),
        ..Default::default()
    };
    let session = Arc::new(session);
    eframe::run_native(
        &title,
        native,
        Box::new(move |cc| {
            let ctx = cc.egui_ctx.clone();
            let notify: Arc<dyn Fn() + Send + Sync> = Arc::new(move || ctx.request_repaint());
            Ok(Box::new(ViewerApp::new(session, opts, notify)?))
        }),
    )
    .map_err(|e| ViewError::Window(e.to_string()))
}

/// A panel's texture and what is in it.
struct Shown {
    texture: TextureHandle,
    k: usize,
    range: Option<Range>,
}

struct ViewerApp {
    session: Arc<Session>,
    depth_worker: Worker,
    color_workers: Vec<Option<Worker>>,
    /// One worker per infrared stream (left, right) that some camera recorded.
    ir_workers: [Option<Worker>; 2],
    results: Receiver<Decoded>,
    /// Frames asked for and not yet received, per [`slot`].
    pending: [HashSet<FrameId>; SLOTS],
    /// Frames that failed to decode (their error is shown), per [`slot`].
    failed: [HashSet<FrameId>; SLOTS],
    depth_cache: HashMap<FrameId, DepthImage>,
    color_cache: HashMap<FrameId, Option<ColorImage>>,
    /// Decoded infrared frames (grey images): left, right.
    ir_cache: [HashMap<FrameId, ColorImage>; 2],
    shown: Vec<[Option<Shown>; SLOTS]>,
    /// Per camera and [`slot`]: whether the stream's panel is shown.
    visible: Vec<[bool; SLOTS]>,
    t: i64,
    playing: bool,
    speed: f64,
    last_tick: Option<Instant>,
    auto_range: bool,
    range_mm: [f32; 2],
    jump_text: String,
    show_info: bool,
    errors: Vec<String>,
    hover: Option<String>,
    debug_layout: bool,
    last_layout: String,
    /// When the playhead last jumped, to print the time until its frames are shown.
    seek_started: Option<Instant>,
    /// Gap spans per camera, once the scan thread has read every index entry.
    gaps: Option<Vec<Vec<Span>>>,
    gap_scan: GapScan,
}

/// The thread that finds the gap spans (it reads every index entry, which takes seconds in
/// a long multi-camera session, so the window opens without waiting for it).
struct GapScan {
    result: Receiver<Vec<Vec<Span>>>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl GapScan {
    fn start(session: Arc<Session>, notify: Arc<dyn Fn() + Send + Sync>) -> Result<Self> {
        let (tx, result) = bounded(1);
        let stop = Arc::new(AtomicBool::new(false));
        let s = Arc::clone(&stop);
        let thread = std::thread::Builder::new()
            .name("view-gaps".into())
            .spawn(move || {
                if let Some(g) = session.scan_gaps(&s) {
                    let _ = tx.send(g);
                    notify();
                }
            })
            .map_err(|source| ViewError::Thread {
                what: "gap scan",
                source,
            })?;
        Ok(Self {
            result,
            stop,
            thread: Some(thread),
        })
    }
}

impl Drop for GapScan {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// A stream's position in the per-camera tables (the order of [`Stream::ALL`]).
fn slot(s: Stream) -> usize {
    match s {
        Stream::Depth => 0,
        Stream::Color => 1,
        Stream::IrLeft => 2,
        Stream::IrRight => 3,
    }
}

/// The panel label of a stream in the stream list.
fn stream_label(s: Stream) -> &'static str {
    match s {
        Stream::Depth => "depth",
        Stream::Color => "colour",
        Stream::IrLeft => "IR left",
        Stream::IrRight => "IR right",
    }
}

impl ViewerApp {
    fn new(
        session: Arc<Session>,
        opts: Options,
        notify: Arc<dyn Fn() + Send + Sync>,
    ) -> Result<Self> {
        let (tx, results) = bounded(64);
        let depth_worker = Worker::spawn(
            "view-depth",
            DepthSource::new(Arc::clone(&session)),
            tx.clone(),
            Arc::clone(&notify),
        )?;
        let mut color_workers = Vec::new();
        for (i, c) in session.recording.cameras.iter().enumerate() {
            color_workers.push(if c.color.is_some() && !c.videos.is_empty() {
                Some(Worker::spawn(
                    &format!("view-color-{i}"),
                    ColorSource::new(Arc::clone(&session), i, opts.ffmpeg.clone()),
                    tx.clone(),
                    Arc::clone(&notify),
                )?)
            } else {
                None
            });
        }
        let mut ir_workers = [None, None];
        for (w, s) in ir_workers.iter_mut().zip(IR) {
            if session.recording.cameras.iter().any(|c| c.count(s) > 0) {
                *w = Some(Worker::spawn(
                    &format!("view-{}", s.name()),
                    InfraredSource::new(Arc::clone(&session), s),
                    tx.clone(),
                    Arc::clone(&notify),
                )?);
            }
        }
        let gap_scan = GapScan::start(Arc::clone(&session), Arc::clone(&notify))?;
        let n = session.cameras.len();
        let visible = session
            .recording
            .cameras
            .iter()
            .map(|c| Stream::ALL.map(|s| c.count(s) > 0))
            .collect();
        Ok(Self {
            t: opts.start_at.clamp(0, session.duration_us),
            session,
            depth_worker,
            color_workers,
            ir_workers,
            results,
            pending: Default::default(),
            failed: Default::default(),
            depth_cache: HashMap::new(),
            color_cache: HashMap::new(),
            ir_cache: Default::default(),
            shown: (0..n).map(|_| Default::default()).collect(),
            visible,
            playing: false,
            speed: 1.0,
            last_tick: None,
            auto_range: true,
            range_mm: [300.0, 4000.0],
            jump_text: String::new(),
            show_info: false,
            errors: Vec::new(),
            hover: None,
            debug_layout: opts.debug_layout,
            last_layout: String::new(),
            seek_started: Some(Instant::now()),
            gaps: None,
            gap_scan,
        })
    }

    fn seek(&mut self, t: i64) {
        let t = t.clamp(0, self.session.duration_us);
        if t != self.t {
            self.seek_started = Some(Instant::now());
        }
        self.t = t;
    }

    /// The (camera, stream) pairs on screen.
    fn visible_streams(&self) -> Vec<(usize, Stream)> {
        let mut v = Vec::new();
        for (c, vis) in self.visible.iter().enumerate() {
            for (s, on) in Stream::ALL.into_iter().zip(vis) {
                if *on && self.session.frame_count(c, s) > 0 {
                    v.push((c, s));
                }
            }
        }
        v
    }

    fn step(&mut self, forward: bool) {
        self.playing = false;
        let streams = self.visible_streams();
        let t = if forward {
            self.session.next_frame_time(self.t, &streams)
        } else {
            self.session.prev_frame_time(self.t, &streams)
        };
        if let Some(t) = t {
            self.seek(t);
        }
    }

    fn receive(&mut self) {
        if self.gaps.is_none() {
            self.gaps = self.gap_scan.result.try_recv().ok();
        }
        while let Ok(d) = self.results.try_recv() {
            match d {
                Decoded::Depth { cam, k, image } => {
                    self.pending[0].remove(&(cam, k));
                    self.depth_cache.insert((cam, k), image);
                }
                Decoded::Color { cam, k, image } => {
                    self.pending[1].remove(&(cam, k));
                    let image = image.map(|i| {
                        ColorImage::from_rgb([i.width as usize, i.height as usize], &i.rgb)
                    });
                    self.color_cache.insert((cam, k), image);
                }
                Decoded::Infrared {
                    cam,
                    stream,
                    k,
                    image,
                } => {
                    self.pending[slot(stream)].remove(&(cam, k));
                    let size = [image.width as usize, image.height as usize];
                    let image = ColorImage::from_gray(size, &image.data);
                    self.ir_cache[slot(stream) - slot(Stream::IrLeft)].insert((cam, k), image);
                }
                Decoded::Failed {
                    cam,
                    stream,
                    k,
                    message,
                } => {
                    self.pending[slot(stream)].remove(&(cam, k));
                    // Not asked for again (a damaged frame would be retried forever).
                    self.failed[slot(stream)].insert((cam, k));
                    if self.errors.len() < 20 && !self.errors.contains(&message) {
                        self.errors.push(message);
                    }
                }
            }
        }
    }

    /// Asks the workers for the frames around the playhead that are not there yet, and
    /// forgets frames far from it.
    fn request(&mut self) {
        let s = Arc::clone(&self.session);
        let cams = |st: Stream| -> Vec<usize> {
            (0..self.visible.len())
                .filter(|&c| self.visible[c][slot(st)])
                .collect()
        };
        let ahead = if self.playing { 8 } else { 2 };
        let depth_plan = prefetch_plan(
            &s,
            Stream::Depth,
            self.t,
            &cams(Stream::Depth),
            ahead,
            2,
            |id| self.depth_cache.contains_key(&id) || self.failed[0].contains(&id),
        );
        if depth_plan.iter().any(|id| !self.pending[0].contains(id)) {
            self.pending[0] = depth_plan.iter().copied().collect();
            self.depth_worker.request(depth_plan);
        }
        for (i, st) in IR.into_iter().enumerate() {
            let Some(w) = &self.ir_workers[i] else {
                continue;
            };
            let (cache, failed) = (&self.ir_cache[i], &self.failed[slot(st)]);
            let plan = prefetch_plan(&s, st, self.t, &cams(st), ahead, 2, |id| {
                cache.contains_key(&id) || failed.contains(&id)
            });
            if plan.iter().any(|id| !self.pending[slot(st)].contains(id)) {
                self.pending[slot(st)] = plan.iter().copied().collect();
                w.request(plan);
            }
        }
        for c in cams(Stream::Color) {
            let Some(w) = self.color_workers.get(c).and_then(Option::as_ref) else {
                continue;
            };
            let plan = prefetch_plan(&s, Stream::Color, self.t, &[c], ahead, 0, |id| {
                self.color_cache.contains_key(&id) || self.failed[1].contains(&id)
            });
            let mine: Vec<FrameId> = self.pending[1]
                .iter()
                .filter(|p| p.0 == c)
                .copied()
                .collect();
            if plan.iter().any(|id| !mine.contains(id)) {
                self.pending[1].retain(|p| p.0 != c);
                self.pending[1].extend(plan.iter().copied());
                w.request(plan);
            }
        }
        // Forget frames far from the playhead.
        let near = |&(c, k): &FrameId, st: Stream| {
            s.frame_at(c, st, self.t)
                .is_some_and(|now| k.abs_diff(now) <= KEEP)
        };
        self.depth_cache.retain(|id, _| near(id, Stream::Depth));
        self.color_cache.retain(|id, _| near(id, Stream::Color));
        for (cache, st) in self.ir_cache.iter_mut().zip(IR) {
            cache.retain(|id, _| near(id, st));
        }
    }

    fn keyboard(&mut self, ctx: &egui::Context) {
        if ctx.wants_keyboard_input() {
            return;
        }
        // Consumed here, before any widget sees them: a focused button would otherwise take
        // Space as a click too.
        let (space, left, right, home, end) = ctx.input_mut(|i| {
            let mut k = |key| i.consume_key(egui::Modifiers::NONE, key);
            (
                k(Key::Space),
                k(Key::ArrowLeft),
                k(Key::ArrowRight),
                k(Key::Home),
                k(Key::End),
            )
        });
        if space {
            self.toggle_play();
        }
        if left {
            self.step(false);
        }
        if right {
            self.step(true);
        }
        if home {
            self.playing = false;
            self.seek(0);
        }
        if end {
            self.playing = false;
            self.seek(self.session.duration_us);
        }
    }

    fn toggle_play(&mut self) {
        self.playing = !self.playing;
        if self.playing && self.t >= self.session.duration_us {
            self.seek(0);
        }
        self.last_tick = None;
    }

    fn advance(&mut self, ctx: &egui::Context) {
        if !self.playing {
            self.last_tick = None;
            return;
        }
        let now = Instant::now();
        if let Some(last) = self.last_tick {
            let dt = now.duration_since(last).as_secs_f64() * self.speed * 1e6;
            self.t = (self.t + dt as i64).min(self.session.duration_us);
            if self.t >= self.session.duration_us {
                self.playing = false;
            }
        }
        self.last_tick = Some(now);
        ctx.request_repaint();
    }

    fn top_panel(&mut self, ctx: &egui::Context) {
        egui::TopBottomPanel::top("notices").show(ctx, |ui| {
            ui.horizontal(|ui| {
                ui.strong(&self.session.description);
                ui.label(format!(
                    "{} camera(s), {}",
                    self.session.cameras.len(),
                    format_time(self.session.duration_us)
                ));
                ui.toggle_value(&mut self.show_info, "Info");
            });
            for n in &self.session.notices {
                ui.colored_label(Color32::from_rgb(255, 200, 60), format!("Read-only: {n}"));
            }
            for e in self.errors.iter().take(3) {
                ui.colored_label(Color32::from_rgb(255, 100, 100), e);
            }
            if self.errors.len() > 3 {
                ui.colored_label(
                    Color32::from_rgb(255, 100, 100),
                    format!("... {} more errors", self.errors.len() - 3),
                );
            }
        });
    }

    fn side_panel(&mut self, ctx: &egui::Context) {
        egui::SidePanel::left("streams")
            .resizable(false)
            .default_width(150.0)
            .show(ctx, |ui| {
                ui.heading("Streams");
                for (c, cam) in self.session.cameras.iter().enumerate() {
                    ui.label(&cam.name);
                    for s in Stream::ALL {
                        if self.session.frame_count(c, s) > 0 {
                            ui.checkbox(&mut self.visible[c][slot(s)], stream_label(s));
                        }
                    }
                }
                ui.separator();
                ui.heading("Depth range");
                ui.checkbox(&mut self.auto_range, "automatic (2-98 %)");
                ui.add_enabled_ui(!self.auto_range, |ui| {
                    ui.add(
                        egui::DragValue::new(&mut self.range_mm[0])
                            .range(0.0..=65_535.0)
                            .suffix(" mm"),
                    );
                    ui.add(
                        egui::DragValue::new(&mut self.range_mm[1])
                            .range(1.0..=65_535.0)
                            .suffix(" mm"),
                    );
                });
                if let Some(h) = &self.hover {
                    ui.separator();
                    ui.label(h);
                }
            });
    }

    fn info_panel(&mut self, ctx: &egui::Context) {
        if !self.show_info {
            return;
        }
        egui::SidePanel::right("info")
            .default_width(360.0)
            .show(ctx, |ui| {
                egui::ScrollArea::vertical().show(ui, |ui| {
                    for (c, cam) in self.session.cameras.iter().enumerate() {
                        ui.heading(&cam.name);
                        egui::Grid::new(format!("info-{}", cam.name))
                            .num_columns(2)
                            .show(ui, |ui| {
                                for (k, v) in &cam.info {
                                    ui.label(k);
                                    ui.add(egui::Label::new(v).wrap());
                                    ui.end_row();
                                }
                                ui.label("timeline gaps");
                                match self.gaps.as_ref().and_then(|g| g.get(c)) {
                                    Some(g) => {
                                        let lost: u64 = g.iter().map(|g| g.missing).sum();
                                        ui.label(format!("{} spans, {lost} frames", g.len()))
                                    }
                                    None => ui.label("scanning the index..."),
                                };
                                ui.end_row();
                            });
                        for f in &cam.files {
                            ui.label(format!(
                                "{}: {:.1} MB, {}{}, {}",
                                f.path.display(),
                                f.bytes as f64 / 1e6,
                                if f.closed { "closed" } else { "NOT closed" },
                                if f.torn_tail_bytes > 0 {
                                    format!(", torn tail {} B", f.torn_tail_bytes)
                                } else {
                                    String::new()
                                },
                                f.writer
                            ));
                        }
                        ui.separator();
                    }
                });
            });
    }

    fn timeline(&mut self, ctx: &egui::Context) {
        egui::TopBottomPanel::bottom("timeline").show(ctx, |ui| {
            ui.add_space(4.0);
            ui.horizontal(|ui| {
                if ui.button("|<").on_hover_text("Start (Home)").clicked() {
                    self.playing = false;
                    self.seek(0);
                }
                if ui
                    .button("<")
                    .on_hover_text("Previous frame (Left)")
                    .clicked()
                {
                    self.step(false);
                }
                let label = if self.playing { "Pause" } else { "Play" };
                if ui.button(label).on_hover_text("Space").clicked() {
                    self.toggle_play();
                }
                if ui.button(">").on_hover_text("Next frame (Right)").clicked() {
                    self.step(true);
                }
                if ui.button(">|").on_hover_text("End (End)").clicked() {
                    self.playing = false;
                    self.seek(self.session.duration_us);
                }
                egui::ComboBox::from_id_salt("speed")
                    .width(60.0)
                    .selected_text(format!("{}x", self.speed))
                    .show_ui(ui, |ui| {
                        for s in SPEEDS {
                            ui.selectable_value(&mut self.speed, s, format!("{s}x"));
                        }
                    });
                ui.monospace(format!(
                    "{} / {}",
                    format_time(self.t),
                    format_time(self.session.duration_us)
                ));
                ui.monospace(self.session.utc_at(self.t));
                let edit = ui.add(
                    egui::TextEdit::singleline(&mut self.jump_text)
                        .desired_width(90.0)
                        .hint_text("HH:MM:SS"),
                );
                let enter = edit.lost_focus() && ui.input(|i| i.key_pressed(Key::Enter));
                if ui.button("Go").clicked() || enter {
                    match parse_time(&self.jump_text) {
                        Some(t) => {
                            self.playing = false;
                            self.seek(t);
                        }
                        None => self.jump_text = "bad time".into(),
                    }
                }
            });
            self.scrub_bar(ui);
            ui.add_space(4.0);
        });
    }

    /// The scrub bar: one row per camera with its gap spans (depth red above, colour orange
    /// and infrared violet below), the playhead in white.
    fn scrub_bar(&mut self, ui: &mut egui::Ui) {
        let rows = self.session.cameras.len().max(1);
        let height = 14.0 + 10.0 * rows as f32;
        let (rect, resp) =
            ui.allocate_exact_size(vec2(ui.available_width(), height), Sense::click_and_drag());
        let dur = self.session.duration_us.max(1) as f64;
        let x_of = |t: i64| rect.min.x + (t as f64 / dur) as f32 * rect.width();
        if let Some(p) = resp.interact_pointer_pos() {
            if resp.clicked() || resp.dragged() {
                let f = ((p.x - rect.min.x) / rect.width()).clamp(0.0, 1.0) as f64;
                self.playing = false;
                self.seek((f * dur) as i64);
            }
        }
        let painter = ui.painter_at(rect);
        painter.rect_filled(rect, 2.0, Color32::from_gray(40));
        for (i, cam) in self.session.cameras.iter().enumerate() {
            let y0 = rect.min.y + 12.0 + 10.0 * i as f32;
            let row = Rect::from_min_max(pos2(rect.min.x, y0), pos2(rect.max.x, y0 + 8.0));
            painter.rect_filled(row, 0.0, Color32::from_gray(70));
            // Depth gaps in red on the upper half of the row, colour (orange) and infrared
            // (violet) gaps below.
            let gaps = self.gaps.as_ref().and_then(|g| g.get(i));
            for g in gaps.into_iter().flatten() {
                let (a, b) = (x_of(g.start), x_of(g.end));
                let (y, colour) = match g.stream {
                    Stream::Depth => (y0, Color32::from_rgb(230, 40, 40)),
                    Stream::Color => (y0 + 4.0, Color32::from_rgb(255, 150, 0)),
                    Stream::IrLeft | Stream::IrRight => (y0 + 4.0, Color32::from_rgb(170, 90, 255)),
                };
                let r = Rect::from_min_max(pos2(a, y), pos2(b.max(a + 2.0), y + 4.0));
                painter.rect_filled(r, 0.0, colour);
            }
            painter.text(
                pos2(rect.min.x + 2.0, y0 - 1.0),
                Align2::LEFT_TOP,
                &cam.name,
                FontId::proportional(8.0),
                Color32::from_gray(200),
            );
        }
        let x = x_of(self.t);
        painter.line_segment(
            [pos2(x, rect.min.y), pos2(x, rect.max.y)],
            Stroke::new(2.0, Color32::WHITE),
        );
        if let Some(p) = resp.hover_pos() {
            let f = ((p.x - rect.min.x) / rect.width()).clamp(0.0, 1.0) as f64;
            resp.on_hover_text_at_pointer(format_time((f * dur) as i64));
        }
    }

    /// Puts frame `k` of a panel into its texture if it is decoded and not there already.
    fn update_texture(&mut self, ctx: &egui::Context, c: usize, s: Stream, k: usize) {
        let range = match s {
            Stream::Depth => {
                let Some(img) = self.depth_cache.get(&(c, k)) else {
                    return;
                };
                let units = self.session.cameras[c].depth_units.max(1e-6);
                let r = if self.auto_range {
                    img.auto_range.unwrap_or(Range::new(1, 10_000))
                } else {
                    let u = |mm: f32| (mm / 1000.0 / units).clamp(0.0, 65_535.0) as u16;
                    Range::new(u(self.range_mm[0]), u(self.range_mm[1]))
                };
                Some(r)
            }
            Stream::Color | Stream::IrLeft | Stream::IrRight => None,
        };
        if let Some(sh) = &self.shown[c][slot(s)] {
            if sh.k == k && sh.range == range {
                return;
            }
        }
        let image = match s {
            Stream::Depth => {
                let img = &self.depth_cache[&(c, k)];
                let mut rgba = Vec::new();
                colorize(&img.data, range.expect("depth has a range"), &mut rgba);
                ColorImage::from_rgba_unmultiplied([img.width as usize, img.height as usize], &rgba)
            }
            Stream::Color => match self.color_cache.get(&(c, k)) {
                Some(Some(img)) => img.clone(),
                Some(None) => ColorImage::new([4, 4], vec![Color32::from_gray(30); 16]),
                None => return,
            },
            Stream::IrLeft | Stream::IrRight => {
                match self.ir_cache[slot(s) - slot(Stream::IrLeft)].get(&(c, k)) {
                    Some(img) => img.clone(),
                    None => return,
                }
            }
        };
        match &mut self.shown[c][slot(s)] {
            Some(sh) => {
                sh.texture.set(image, TextureOptions::LINEAR);
                sh.k = k;
                sh.range = range;
            }
            None => {
                let texture =
                    ctx.load_texture(format!("cam{c}-{s:?}"), image, TextureOptions::LINEAR);
                self.shown[c][slot(s)] = Some(Shown { texture, k, range });
            }
        }
    }

    fn cameras(&mut self, ctx: &egui::Context) {
        let mut layout = Vec::new();
        self.hover = None;
        egui::CentralPanel::default().show(ctx, |ui| {
            let area = ui.available_rect_before_wrap();
            let cams: Vec<usize> = (0..self.session.cameras.len())
                .filter(|&c| self.visible[c].iter().any(|v| *v))
                .collect();
            if cams.is_empty() {
                ui.label("No stream selected.");
                return;
            }
            let per_cam = |c: usize| self.visible[c].iter().filter(|v| **v).count().max(1);
            let slots = cams.iter().map(|&c| per_cam(c)).max().unwrap_or(1);
            // The grid (columns of cameras) that gives the largest 4:3 images.
            let label_h = 18.0;
            let mut best = (1, 0.0f32);
            for cols in 1..=cams.len() {
                let rows = cams.len().div_ceil(cols);
                let w = area.width() / (cols * slots) as f32;
                let h = area.height() / rows as f32 - label_h;
                let scale = (w / 4.0).min(h / 3.0);
                if scale > best.1 {
                    best = (cols, scale);
                }
            }
            let cols = best.0;
            let rows = cams.len().div_ceil(cols);
            let cell = vec2(area.width() / cols as f32, area.height() / rows as f32);
            for (i, &c) in cams.iter().enumerate() {
                let origin =
                    area.min + vec2((i % cols) as f32 * cell.x, (i / cols) as f32 * cell.y);
                let slot_w = cell.x / slots as f32;
                let mut j = 0;
                for s in Stream::ALL {
                    if !self.visible[c][slot(s)] || self.session.frame_count(c, s) == 0 {
                        continue;
                    }
                    let min = origin + vec2(j as f32 * slot_w, 0.0);
                    j += 1;
                    let want = self.session.frame_at(c, s, self.t);
                    if let Some(k) = want {
                        self.update_texture(ctx, c, s, k);
                    }
                    let name = &self.session.cameras[c].name;
                    let label = match (&self.shown[c][slot(s)], s) {
                        (Some(sh), Stream::Depth) => match sh.range {
                            Some(r) => {
                                let u = self.session.cameras[c].depth_units * 1000.0;
                                format!(
                                    "{name} depth #{} ({:.0}-{:.0} mm)",
                                    sh.k,
                                    r.min as f32 * u,
                                    r.max as f32 * u
                                )
                            }
                            None => format!("{name} depth #{}", sh.k),
                        },
                        (Some(sh), Stream::Color) => format!("{name} colour #{}", sh.k),
                        (Some(sh), _) => format!("{name} {} #{}", stream_label(s), sh.k),
                        (None, _) => format!("{name} {s:?}: decoding..."),
                    };
                    let label = match (&self.shown[c][slot(s)], want) {
                        (Some(sh), Some(k)) if sh.k != k => format!("{label} - decoding #{k}..."),
                        _ => label,
                    };
                    // The image, as large as fits, centred in its slot; the label above it.
                    let fit = self.shown[c][slot(s)].as_ref().map(|sh| {
                        let [tw, th] = sh.texture.size();
                        let (bw, bh) = (slot_w - 8.0, cell.y - label_h - 6.0);
                        let scale = (bw / tw as f32).min(bh / th as f32).max(0.01);
                        (scale, vec2(tw as f32 * scale, th as f32 * scale))
                    });
                    let x_off = fit.map_or(4.0, |(_, size)| ((slot_w - size.x) / 2.0).max(4.0));
                    ui.painter().text(
                        min + vec2(x_off, 2.0),
                        Align2::LEFT_TOP,
                        label,
                        FontId::proportional(13.0),
                        Color32::from_gray(220),
                    );
                    let (Some(sh), Some((scale, size))) = (&self.shown[c][slot(s)], fit) else {
                        layout.push((c, s, Rect::NOTHING, 0, false));
                        continue;
                    };
                    let rect = Rect::from_min_size(min + vec2(x_off, label_h), size);
                    ui.painter().image(
                        sh.texture.id(),
                        rect,
                        Rect::from_min_max(pos2(0.0, 0.0), pos2(1.0, 1.0)),
                        Color32::WHITE,
                    );
                    let resp = ui.interact(rect, ui.id().with((c, slot(s))), Sense::hover());
                    if s.is_infrared() {
                        if let Some(p) = resp.hover_pos() {
                            let x = ((p.x - rect.min.x) / scale) as usize;
                            let y = ((p.y - rect.min.y) / scale) as usize;
                            let cache = &self.ir_cache[slot(s) - slot(Stream::IrLeft)];
                            if let Some(img) = cache.get(&(c, sh.k)) {
                                let [w, h] = img.size;
                                if x < w && y < h {
                                    let v = img.pixels[y * w + x].r();
                                    let text =
                                        format!("{name} {} ({x}, {y}): {v}", stream_label(s));
                                    resp.on_hover_text_at_pointer(&text);
                                    self.hover = Some(text);
                                }
                            }
                        }
                    } else if s == Stream::Depth {
                        if let Some(p) = resp.hover_pos() {
                            let x = ((p.x - rect.min.x) / scale) as usize;
                            let y = ((p.y - rect.min.y) / scale) as usize;
                            if let Some(img) = self.depth_cache.get(&(c, sh.k)) {
                                if x < img.width as usize && y < img.height as usize {
                                    let v = img.data[y * img.width as usize + x];
                                    let text = format!(
                                        "{name} ({x}, {y}): {}",
                                        distance_label(v, self.session.cameras[c].depth_units)
                                    );
                                    resp.on_hover_text_at_pointer(&text);
                                    self.hover = Some(text);
                                }
                            }
                        }
                    }
                    layout.push((c, s, rect, sh.k, want == Some(sh.k)));
                }
            }
        });
        if self.debug_layout {
            self.print_layout(ctx, &layout);
        }
    }

    /// One stderr line describing the window, every panel and whether it shows the frame
    /// of the playhead; printed when it changes (tests parse it).
    fn print_layout(&mut self, ctx: &egui::Context, layout: &[(usize, Stream, Rect, usize, bool)]) {
        let ppp = ctx.pixels_per_point();
        let win = ctx.input(|i| i.viewport().inner_rect);
        let px = |r: Rect| {
            r.is_positive().then(|| {
                [
                    (r.min.x * ppp).round() as i64,
                    (r.min.y * ppp).round() as i64,
                    (r.width() * ppp).round() as i64,
                    (r.height() * ppp).round() as i64,
                ]
            })
        };
        let panels: Vec<serde_json::Value> = layout
            .iter()
            .map(|(c, s, r, k, current)| {
                serde_json::json!({
                    "camera": self.session.cameras[*c].name,
                    "stream": s.name(),
                    "rect": px(*r),
                    "frame": k,
                    "current": current,
                })
            })
            .collect();
        let all_current = layout.iter().all(|l| l.4) && !layout.is_empty();
        if all_current {
            if let Some(t0) = self.seek_started.take() {
                eprintln!(
                    "rsrec-view-seek {{\"t_us\":{},\"shown_after_ms\":{:.1}}}",
                    self.t,
                    t0.elapsed().as_secs_f64() * 1e3
                );
            }
        }
        let line = serde_json::json!({
            "window": win.and_then(px),
            "t_us": self.t,
            "ready": all_current,
            "hover": self.hover,
            "panels": panels,
        })
        .to_string();
        if line != self.last_layout {
            eprintln!("rsrec-view-layout {line}");
            self.last_layout = line;
        }
    }
}

impl eframe::App for ViewerApp {
    fn update(&mut self, ctx: &egui::Context, _frame: &mut eframe::Frame) {
        self.receive();
        self.keyboard(ctx);
        self.advance(ctx);
        self.top_panel(ctx);
        self.side_panel(ctx);
        self.info_panel(ctx);
        self.timeline(ctx);
        self.request();
        self.cameras(ctx);
    }
}
