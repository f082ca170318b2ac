// Default options of the sanitizer runtimes, compiled into every executable of a sanitizer build
// (KMS_SANITIZE=address or thread; the root CMakeLists.txt), so a suite run by ctest, by hand, or a
// binary a test starts as a child (kmsctl, kms-provision) behaves the same. The runtimes call these
// weak hooks before they read ASAN_OPTIONS, UBSAN_OPTIONS, LSAN_OPTIONS and TSAN_OPTIONS, so the
// environment still adds to or overrides them for one run.
//
// Every finding is fatal: a report that only prints is a report nobody reads.
//
// Suppressions: none. They would be for third-party code only (a finding in the project's code is
// fixed, never suppressed), and none is needed: the unit and softhsm suites run clean under
// ASan+UBSan+LSan and the [concurrency] cases under TSan (docs/testing.md). SoftHSM2 is a C++
// module built without sanitizers that pkcs11::Module dlopen()s: ASan needs nothing for it (the
// runtime intercepts its malloc/new like everyone's, and does not check its memory accesses), and
// LeakSanitizer reports nothing of it in these suites. Should a suppression ever be needed, note that
// the module is dlclose()d before LeakSanitizer reports at exit, so its frames would show as
// <unknown module> and `leak:libsofthsm2.so` would not match them: suppress by the frame of ours
// that calls into it, with the reason beside it, in a __lsan_default_suppressions() defined here.

extern "C" {

#if defined(__SANITIZE_ADDRESS__)
// detect_leaks: LeakSanitizer at exit (also in children the tests start).
// abort_on_error: a report ends the process with SIGABRT, which ctest shows as a failure even from a
//   child whose exit status a test does not look at.
// strict_string_checks: the C string functions must find the terminator inside the buffer.
// detect_stack_use_after_return: a lambda or string_view outliving the frame it points into.
// check_initialization_order, strict_init_order: no static initialiser reads another file's global.
const char* __asan_default_options() {
  return "detect_leaks=1:abort_on_error=1:strict_string_checks=1:detect_stack_use_after_return=1:"
         "check_initialization_order=1:strict_init_order=1";
}

// UBSan runs with ASan. The build passes -fno-sanitize-recover=all, so the first report ends the
// process; this adds the stack that says how it got there.
const char* __ubsan_default_options() { return "halt_on_error=1:print_stacktrace=1"; }
#endif

#if defined(__SANITIZE_THREAD__)
// halt_on_error: the first race ends the test with its report, rather than a summary at exit that a
//   passing exit status would hide. second_deadlock_stack: both stacks of a lock-order inversion.
const char* __tsan_default_options() { return "halt_on_error=1:second_deadlock_stack=1"; }
#endif

}  // extern "C"
