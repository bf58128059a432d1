//! Integration tests of the `#[quadriga::task]` attribute: inputs of every
//! arity, `Result` returns, names, visibility, doc comments, and that the task
//! stays callable as a plain function.

mod common;

use std::marker::PhantomData;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};

use common::within;
use quadriga::{Task, ThreadPool};

/// Answers the question. Doc comments on a task are allowed.
#[quadriga::task]
fn answer() -> u32 {
    42
}

/// Squares a number.
///
/// Several paragraphs of docs, too.
#[quadriga::task]
fn square(x: u64) -> u64 {
    x * x
}

#[quadriga::task]
fn add3(a: i32, b: i32, c: i32) -> i32 {
    a * 100 + b * 10 + c
}

#[quadriga::task]
fn halve(x: i64) -> Result<i64, String> {
    if x % 2 == 0 {
        Ok(x / 2)
    } else {
        Err(format!("{x} is odd"))
    }
}

#[quadriga::task]
fn check(ok: bool) -> std::result::Result<(), String> {
    if ok { Ok(()) } else { Err("not ok".into()) }
}

#[quadriga::task(name = "x.y")]
fn renamed(s: String) -> usize {
    s.len()
}

static CALLS: AtomicUsize = AtomicUsize::new(0);

#[quadriga::task]
fn nothing_returned(x: u8) {
    CALLS.fetch_add(usize::from(x), SeqCst);
}

#[quadriga::task]
fn countdown(mut n: u32) -> u32 {
    let mut steps = 0;
    while n > 0 {
        n -= 1;
        steps += 1;
    }
    steps
}

#[quadriga::task]
fn swap((a, b): (u8, String)) -> (String, u8) {
    (b, a)
}

#[quadriga::task]
fn factorial(n: u64) -> u64 {
    if n == 0 { 1 } else { n * factorial(n - 1) }
}

#[quadriga::task]
#[allow(clippy::needless_range_loop)]
fn sum_vec(v: Vec<u32>) -> u32 {
    let mut s = 0;
    for i in 0..v.len() {
        s += v[i];
    }
    s
}

/// Tasks in a public module, used from outside it.
pub mod math {
    /// Cubes a number; used from outside this module.
    #[quadriga::task]
    pub fn cube(x: i64) -> i64 {
        x * x * x
    }

    /// A module nested one level deeper.
    pub mod deeper {
        /// Same function name as the outer `square`, different task name.
        #[quadriga::task]
        pub fn square(x: u64) -> u64 {
            x * x + 1
        }
    }
}

fn input_of<T: Task>(_: T) -> PhantomData<T::Input> {
    PhantomData
}

fn output_of<T: Task>(_: T) -> PhantomData<T::Output> {
    PhantomData
}

fn name_of<T: Task>(_: T) -> &'static str {
    T::NAME
}

#[test]
fn zero_argument_task_takes_unit() {
    let _: PhantomData<()> = input_of(answer);
    let _: PhantomData<u32> = output_of(answer);
    assert_eq!(answer(), 42);
    assert_eq!(answer.run(()).unwrap(), 42);
    within(30, || {
        let pool = ThreadPool::new(1).unwrap();
        assert_eq!(pool.submit(answer, ()).join().unwrap(), 42);
        let all: Vec<u32> = pool.map(answer, vec![(); 3]).map(Result::unwrap).collect();
        assert_eq!(all, [42, 42, 42]);
    });
}

#[test]
fn one_argument_task_takes_the_argument() {
    let _: PhantomData<u64> = input_of(square);
    assert_eq!(square(3), 9);
    assert_eq!(square.run(4).unwrap(), 16);
    assert_eq!(square::call(5), 25);
    within(30, || {
        let pool = ThreadPool::new(2).unwrap();
        assert_eq!(pool.submit(square, 6).join().unwrap(), 36);
    });
}

#[test]
fn several_arguments_become_a_tuple() {
    let _: PhantomData<(i32, i32, i32)> = input_of(add3);
    assert_eq!(add3(1, 2, 3), 123);
    assert_eq!(add3.run((4, 5, 6)).unwrap(), 456);
    within(30, || {
        let pool = ThreadPool::new(2).unwrap();
        assert_eq!(pool.submit(add3, (7, 8, 9)).join().unwrap(), 789);
        let got: Vec<i32> = pool
            .map(add3, [(1, 0, 0), (0, 1, 0), (0, 0, 1)])
            .map(Result::unwrap)
            .collect();
        assert_eq!(got, [100, 10, 1]);
    });
}

#[test]
fn result_return_has_the_ok_type_as_output() {
    let _: PhantomData<i64> = output_of(halve);
    let _: PhantomData<()> = output_of(check);
    // Called directly it is still the plain function, returning the Result.
    assert_eq!(halve(4), Ok(2));
    assert_eq!(halve(3), Err("3 is odd".to_string()));
    assert_eq!(halve.run(8).unwrap(), 4);
    let err = halve.run(5).unwrap_err();
    assert!(err.is_failed());
    assert_eq!(err.message(), "5 is odd");
    check.run(true).unwrap();
    assert_eq!(check.run(false).unwrap_err().message(), "not ok");
    within(30, || {
        let pool = ThreadPool::new(2).unwrap();
        assert_eq!(pool.submit(halve, 10).join().unwrap(), 5);
        let err = pool.submit(halve, 11).join().unwrap_err();
        assert!(err.is_failed());
        assert_eq!(err.message(), "11 is odd");
    });
}

#[test]
fn default_and_custom_names() {
    assert_eq!(square::NAME, concat!(module_path!(), "::square"));
    assert_eq!(name_of(add3), concat!(module_path!(), "::add3"));
    assert_eq!(renamed::NAME, "x.y");
    assert_eq!(name_of(renamed), "x.y");
    assert_eq!(renamed(String::from("abcd")), 4);
    within(30, || {
        let pool = ThreadPool::new(1).unwrap();
        // The custom name is what errors report.
        pool.shutdown(quadriga::Shutdown::Wait);
        let err = pool.submit(renamed, String::new()).join().unwrap_err();
        assert_eq!(err.task_name(), Some("x.y"));
    });
}

#[test]
fn pub_task_in_a_module_is_usable_from_outside() {
    assert_eq!(math::cube(3), 27);
    assert_eq!(
        <math::cube as Task>::NAME,
        concat!(module_path!(), "::math::cube")
    );
    assert_eq!(
        math::deeper::square::NAME,
        concat!(module_path!(), "::math::deeper::square")
    );
    assert_ne!(math::deeper::square::NAME, square::NAME);
    assert_eq!(math::deeper::square(3), 10);
    within(30, || {
        let pool = ThreadPool::new(2).unwrap();
        assert_eq!(pool.submit(math::cube, -2).join().unwrap(), -8);
        assert_eq!(pool.submit(math::deeper::square, 2).join().unwrap(), 5);
    });
}

#[test]
fn unit_return_mut_and_pattern_arguments() {
    let _: PhantomData<()> = output_of(nothing_returned);
    let before = CALLS.load(SeqCst);
    // A call as a statement: it has an effect, whatever lints may think.
    nothing_returned(1);
    assert_eq!(CALLS.load(SeqCst), before + 1);
    assert_eq!(countdown(5), 5);
    let _: PhantomData<(u8, String)> = input_of(swap);
    assert_eq!(swap((1, "a".into())), ("a".to_string(), 1));
    within(30, || {
        let pool = ThreadPool::new(1).unwrap();
        pool.submit(nothing_returned, 3).join().unwrap();
        assert_eq!(pool.submit(countdown, 7).join().unwrap(), 7);
        assert_eq!(
            pool.submit(swap, (2, "b".into())).join().unwrap(),
            ("b".to_string(), 2)
        );
    });
}

#[test]
fn a_task_can_call_itself_and_keep_other_attributes() {
    assert_eq!(factorial(10), 3_628_800);
    assert_eq!(sum_vec(vec![1, 2, 3]), 6);
    within(30, || {
        let pool = ThreadPool::new(1).unwrap();
        assert_eq!(pool.submit(factorial, 5).join().unwrap(), 120);
        assert_eq!(pool.submit(sum_vec, vec![4, 5]).join().unwrap(), 9);
    });
}

#[test]
fn task_values_are_plain_copyable_values() {
    let a = square;
    let b = a;
    assert_eq!(a, b);
    assert_eq!(format!("{a:?}"), "square");
    let tasks = [square, square];
    assert_eq!(tasks.iter().map(|t| t(2)).sum::<u64>(), 8);
}
