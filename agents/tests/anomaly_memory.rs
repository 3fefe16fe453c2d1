//! The anomaly detector reads the caller's points where they are: running it on a request of
//! 50,000 points x 32 features (13 MB of numbers) allocates less than half that again at its
//! peak. A detector that copied the points (as it did, twice) would allocate twice the data.
//! Measured with a counting allocator, so this file is its own test binary.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

use mesh_agents::anomaly::{detect, AnomalyRequest};

struct Counting;

static CURRENT: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let now = CURRENT.fetch_add(layout.size(), Ordering::Relaxed) + layout.size();
        PEAK.fetch_max(now, Ordering::Relaxed);
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        CURRENT.fetch_sub(layout.size(), Ordering::Relaxed);
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

#[test]
fn the_detector_does_not_copy_the_points() {
    const POINTS: usize = 50_000;
    const FEATURES: usize = 32;
    let points: Vec<Vec<f64>> = (0..POINTS)
        .map(|i| {
            (0..FEATURES)
                .map(|f| ((i * 7919 + f * 104_729) % 1_000) as f64 / 10.0)
                .collect()
        })
        .collect();
    let request = AnomalyRequest {
        points: Some(points),
        n_trees: Some(10),
        ..AnomalyRequest::default()
    };
    let data_bytes = POINTS * FEATURES * std::mem::size_of::<f64>();
    let before = CURRENT.load(Ordering::Relaxed);
    PEAK.store(before, Ordering::Relaxed);
    let answer = detect(&request, "isolation-forest@1").unwrap();
    let extra = PEAK.load(Ordering::Relaxed) - before;
    eprintln!("peak allocation {extra} bytes for {data_bytes} bytes of points");
    assert_eq!(answer.data_points_analyzed, POINTS);
    assert!(
        extra < data_bytes / 2,
        "the detector allocated {extra} bytes at its peak for {data_bytes} bytes of points"
    );
}
