;; An outbound plugin in WebAssembly's text format: the new body is the whole request,
;; wrapped: {"body": {"request": <the request>}}. It shows the ABI of docs/plugins.md:
;; export `memory`, `alloc(len) -> ptr` and `handle(ptr, len) -> (out_ptr << 32) | out_len`.
(module
  (memory (export "memory") 2)
  ;; Output prefix and suffix, kept at the start of memory.
  (data (i32.const 0) "{\"body\":{\"request\":")
  (data (i32.const 32) "}}")
  ;; The input goes at 1024; the output is built after it.
  (func (export "alloc") (param $len i32) (result i32)
    ;; Grow memory so that input and output (twice the input, plus 64) fit.
    (local $need i32)
    (local.set $need (i32.add (i32.const 1088) (i32.mul (local.get $len) (i32.const 2))))
    (if (i32.gt_u (local.get $need) (i32.mul (memory.size) (i32.const 65536)))
      (then (drop (memory.grow
        (i32.sub (i32.add (i32.shr_u (local.get $need) (i32.const 16)) (i32.const 1)) (memory.size))))))
    (i32.const 1024))
  (func (export "handle") (param $ptr i32) (param $len i32) (result i64)
    (local $out i32)
    (local.set $out (i32.add (local.get $ptr) (local.get $len)))
    (memory.copy (local.get $out) (i32.const 0) (i32.const 19))
    (memory.copy (i32.add (local.get $out) (i32.const 19)) (local.get $ptr) (local.get $len))
    (memory.copy (i32.add (i32.add (local.get $out) (i32.const 19)) (local.get $len)) (i32.const 32) (i32.const 2))
    (i64.or
      (i64.shl (i64.extend_i32_u (local.get $out)) (i64.const 32))
      (i64.extend_i32_u (i32.add (local.get $len) (i32.const 21))))))
