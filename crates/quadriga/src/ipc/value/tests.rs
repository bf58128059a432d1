//! The tests of the shared values, locked and atomic.

use super::shared::Shared;
use super::*;
use crate::shm::{ErrorKind, Kind, Region, TryLockError, fingerprint};

#[test]
fn layout_is_aligned_for_any_plain_type() {
    #[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
    #[repr(C, align(256))]
    struct Wide([u8; 256]);
    let w = Value::new(Wide([7; 256])).unwrap();
    assert_eq!(w.shared.ptr(0) as usize % 256, 0);
    assert_eq!(w.get().0[255], 7);
    let a = Array::new(3, 1_u64).unwrap();
    assert_eq!(a.shared.ptr(0) as usize % 64, 0);
    let z = Array::new(1000, ()).unwrap();
    assert_eq!(z.to_vec().len(), 1000);
}

#[test]
fn a_dead_holder_is_kept_for_lock_by_get_and_dropped_by_set() {
    let v = Value::new(1_u32).unwrap();
    let die = |v: &Value<u32>| {
        let v = v.clone();
        std::thread::spawn(move || std::mem::forget(v.lock().unwrap()))
            .join()
            .unwrap();
    };
    die(&v);
    assert_eq!(v.get(), 1, "get works, quietly");
    assert!(v.lock().is_err(), "the next lock is told");
    assert!(v.lock().is_ok(), "once");
    die(&v);
    v.set(2);
    assert!(v.lock().is_ok(), "a whole-value set repairs");
    let a = Array::new(2, 0_i32).unwrap();
    let a2 = a.clone();
    std::thread::spawn(move || std::mem::forget(a2.lock()))
        .join()
        .unwrap();
    a.set(1, 5);
    let err = a.lock().unwrap_err();
    assert_eq!(**err.get_ref(), [0, 5]);
    let _ = TryLockError::from(err);
}

#[test]
fn received_layouts_are_checked() {
    let a = Array::new(4, 0_u32).unwrap();
    // The same bytes read as another element type: refused by type.
    let r = Region::attach(
        a.shared.region.fd().clone(),
        Kind::Array,
        fingerprint::<u32>(),
    )
    .unwrap();
    assert!(Shared::<u32>::attach(Kind::Array, r).is_ok());
    let r = Region::attach(
        a.shared.region.fd().clone(),
        Kind::Array,
        fingerprint::<u32>(),
    )
    .unwrap();
    assert!(
        Shared::<u64>::attach(Kind::Array, r).is_err(),
        "size differs"
    );
    // A length that does not fit the memory.
    let mut p = Shared::<u32>::params(1 << 40);
    p[0] = u64::MAX;
    let r = Region::create(Kind::Array, fingerprint::<u32>(), p, 256).unwrap();
    let err = Shared::<u32>::attach(Kind::Array, r).err().unwrap();
    assert_eq!(err.kind(), ErrorKind::Invalid);
    let r = Region::create(
        Kind::Array,
        fingerprint::<u32>(),
        Shared::<u32>::params(1000),
        256,
    )
    .unwrap();
    assert!(Shared::<u32>::attach(Kind::Array, r).is_err(), "too short");
}

#[test]
fn an_atomic_is_never_attached_as_a_locked_value_or_the_reverse() {
    let atomic = AtomicValue::new(1_u64).unwrap();
    let as_value = Region::attach(
        atomic.shared.region.fd().clone(),
        Kind::Value,
        fingerprint::<u64>(),
    );
    assert!(as_value.unwrap_err().to_string().contains("kind"));
    let locked = Array::new(2, 1_u64).unwrap();
    let as_atomic = Region::attach(
        locked.shared.region.fd().clone(),
        Kind::AtomicArray,
        fingerprint::<u64>(),
    );
    assert!(as_atomic.unwrap_err().to_string().contains("kind"));
}

#[test]
fn atomics_count_exactly_across_threads() {
    let v = AtomicValue::new(0_i64).unwrap();
    let a = AtomicArray::new(3, 0_u16).unwrap();
    let threads: Vec<_> = (0..4)
        .map(|_| {
            let (v, a) = (v.clone(), a.clone());
            std::thread::spawn(move || {
                for i in 0..3000 {
                    v.fetch_sub(1);
                    a.fetch_add(i % 3, 1);
                }
            })
        })
        .collect();
    threads.into_iter().for_each(|t| t.join().unwrap());
    assert_eq!(v.load(), -12_000);
    assert_eq!(a.to_vec(), [4000, 4000, 4000]);
    assert_eq!(v.swap(5), -12_000);
    assert_eq!(v.compare_exchange(5, 6), Ok(5));
    a.store(1, 9);
    assert_eq!(a.compare_exchange(1, 8, 1), Err(9));
    assert_eq!((a.len(), a.is_empty()), (3, false));
}

#[test]
#[should_panic(expected = "index out of bounds: the len is 2 but the index is 2")]
fn out_of_range_panics_like_a_slice() {
    AtomicArray::new(2, 0_u8).unwrap().fetch_add(2, 1);
}
