//! Gradient checkpointing: a function whose intermediate arrays are not kept for the
//! backward pass but computed again from its inputs when gradients are taken (MLX's
//! `checkpoint` transform). mlx-rs does not wrap it, so this calls mlx-c directly.
//!
//! The function must get everything that needs a gradient (the block's input and its
//! trainable parameters) as inputs; it may capture the rest.

use std::ffi::c_void;

use mlx_rs::error::Exception;
use mlx_rs::Array;

type Result<T> = std::result::Result<T, Exception>;

/// `f(inputs)`, with its intermediates recomputed during the backward pass.
pub fn checkpointed<F>(f: F, inputs: &[Array]) -> Result<Vec<Array>>
where
    F: FnMut(&[Array]) -> Result<Vec<Array>> + 'static,
{
    // SAFETY: the payload is a boxed `F` owned by the mlx closure, which frees it with
    // `drop_payload::<F>` when the last reference (ours, or the graph's) goes away. Every
    // mlx-c object created here is freed before returning; arrays taken from vectors are
    // new references owned by the `Array`s that wrap them.
    unsafe {
        let payload = Box::into_raw(Box::new(f)) as *mut c_void;
        let inner = mlx_sys::mlx_closure_new_func_payload(
            Some(call::<F>),
            payload,
            Some(drop_payload::<F>),
        );
        let mut outer = mlx_sys::mlx_closure_new();
        let status = mlx_sys::mlx_checkpoint(&mut outer, inner);
        mlx_sys::mlx_closure_free(inner);
        if status != 0 {
            mlx_sys::mlx_closure_free(outer);
            return Err(Exception::custom("mlx_checkpoint failed"));
        }
        let args = vector(inputs);
        let mut out = mlx_sys::mlx_vector_array_new();
        let status = mlx_sys::mlx_closure_apply(&mut out, outer, args);
        mlx_sys::mlx_vector_array_free(args);
        mlx_sys::mlx_closure_free(outer);
        let result = if status == 0 {
            Ok(arrays(out))
        } else {
            Err(Exception::custom("the checkpointed function failed"))
        };
        mlx_sys::mlx_vector_array_free(out);
        result
    }
}

unsafe fn vector(arrays: &[Array]) -> mlx_sys::mlx_vector_array {
    let v = mlx_sys::mlx_vector_array_new();
    let ptrs: Vec<mlx_sys::mlx_array> = arrays.iter().map(Array::as_ptr).collect();
    mlx_sys::mlx_vector_array_append_data(v, ptrs.as_ptr(), ptrs.len());
    v
}

unsafe fn arrays(v: mlx_sys::mlx_vector_array) -> Vec<Array> {
    (0..mlx_sys::mlx_vector_array_size(v))
        .map(|i| {
            let mut a = mlx_sys::mlx_array_new();
            mlx_sys::mlx_vector_array_get(&mut a, v, i);
            Array::from_ptr(a)
        })
        .collect()
}

extern "C" fn call<F>(
    ret: *mut mlx_sys::mlx_vector_array,
    args: mlx_sys::mlx_vector_array,
    payload: *mut c_void,
) -> i32
where
    F: FnMut(&[Array]) -> Result<Vec<Array>>,
{
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        // SAFETY: `payload` is the boxed `F` made in `checkpointed`, alive while the closure
        // is; `ret` is a valid out-pointer from mlx-c.
        unsafe {
            let f = &mut *(payload as *mut F);
            let outputs = f(&arrays(args)).ok()?;
            *ret = vector(&outputs);
            Some(())
        }
    }));
    match outcome {
        Ok(Some(())) => 0,
        _ => 1,
    }
}

extern "C" fn drop_payload<F>(payload: *mut c_void) {
    // SAFETY: called once by mlx-c when the closure is freed; the payload is the boxed `F`.
    unsafe { drop(Box::from_raw(payload as *mut F)) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mlx_rs::transforms::value_and_grad_with_argnums as value_and_grad;

    #[test]
    fn checkpointed_gradients_equal_plain_ones() {
        let x = Array::from_slice(&[0.5f32, -1.0, 2.0], &[3]);
        let w = Array::from_slice(&[1.5f32, 0.25, -0.75], &[3]);
        let body = |a: &[Array]| -> Result<Vec<Array>> {
            Ok(vec![mlx_rs::ops::sin(a[0].multiply(&a[1])?)?.sum(None)?])
        };
        let plain = |a: &[Array]| -> Result<Vec<Array>> { body(a) };
        let ckpt = |a: &[Array]| -> Result<Vec<Array>> { checkpointed(body, a) };
        let (v1, g1) = value_and_grad(plain, &[0, 1])(&[x.clone(), w.clone()]).unwrap();
        let (v2, g2) = value_and_grad(ckpt, &[0, 1])(&[x, w]).unwrap();
        assert_eq!(v1[0].item_cast::<f32>(), v2[0].item_cast::<f32>());
        for (a, b) in g1.iter().zip(&g2) {
            assert_eq!(a.as_slice::<f32>(), b.as_slice::<f32>());
        }
    }
}
