;; A stage with two linear memories, each grown by 125 MiB: under a 200 MiB cap one at a time,
;; over it together. The cap must hold in aggregate. (WAT: Rust has no way to declare two
;; memories.) It returns ok when both grows succeed and traps when one is refused.
(component
  (import "ward:stage/types@0.2.0" (instance $types
    (type $se (variant (case "invalid-input" string) (case "failed" string)))
    (export "stage-error" (type (eq $se)))))
  (alias export $types "stage-error" (type $stage-error))
  (core module $m
    (memory $a (export "mem-a") 1)
    (memory $b 1)
    (func (export "run") (result i32)
      ;; 2000 pages (125 MiB) in each memory: under the cap one at a time, over it together.
      (if (i32.eq (memory.grow $a (i32.const 2000)) (i32.const -1)) (then unreachable))
      (if (i32.eq (memory.grow $b (i32.const 2000)) (i32.const -1)) (then unreachable))
      ;; Offset 0 of memory a holds a zero discriminant: result::ok.
      (i32.const 0)))
  (core instance $i (instantiate $m))
  (func $run (result (result (error $stage-error)))
    (canon lift (core func $i "run") (memory (core memory $i "mem-a"))))
  (export "run" (func $run)))
