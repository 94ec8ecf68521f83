//! Property: reading what the writer wrote gives back exactly the metadata and tensors put in.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use proptest::prelude::*;
use rocmforge_gguf::{
    GgmlType, GgufFile, GgufWriter, Metadata, MetadataArray, MetadataValue, MetadataValueType,
};

const SCALAR_TYPES: [MetadataValueType; 12] = [
    MetadataValueType::U8,
    MetadataValueType::I8,
    MetadataValueType::U16,
    MetadataValueType::I16,
    MetadataValueType::U32,
    MetadataValueType::I32,
    MetadataValueType::F32,
    MetadataValueType::Bool,
    MetadataValueType::String,
    MetadataValueType::U64,
    MetadataValueType::I64,
    MetadataValueType::F64,
];

/// Any value of scalar type `ty` (floats: every bit pattern except NaN, which never equals itself).
fn scalar_of(ty: MetadataValueType) -> BoxedStrategy<MetadataValue> {
    use MetadataValue as V;
    match ty {
        MetadataValueType::U8 => any::<u8>().prop_map(V::U8).boxed(),
        MetadataValueType::I8 => any::<i8>().prop_map(V::I8).boxed(),
        MetadataValueType::U16 => any::<u16>().prop_map(V::U16).boxed(),
        MetadataValueType::I16 => any::<i16>().prop_map(V::I16).boxed(),
        MetadataValueType::U32 => any::<u32>().prop_map(V::U32).boxed(),
        MetadataValueType::I32 => any::<i32>().prop_map(V::I32).boxed(),
        MetadataValueType::F32 => any::<u32>()
            .prop_map(f32::from_bits)
            .prop_filter("NaN", |f| !f.is_nan())
            .prop_map(V::F32)
            .boxed(),
        MetadataValueType::Bool => any::<bool>().prop_map(V::Bool).boxed(),
        MetadataValueType::String => ".{0,12}".prop_map(V::String).boxed(),
        MetadataValueType::U64 => any::<u64>().prop_map(V::U64).boxed(),
        MetadataValueType::I64 => any::<i64>().prop_map(V::I64).boxed(),
        MetadataValueType::F64 => any::<u64>()
            .prop_map(f64::from_bits)
            .prop_filter("NaN", |f| !f.is_nan())
            .prop_map(V::F64)
            .boxed(),
        MetadataValueType::Array => Just(V::Array(MetadataArray::new(ty, vec![]))).boxed(),
    }
}

fn scalar_type() -> impl Strategy<Value = MetadataValueType> {
    prop::sample::select(SCALAR_TYPES.to_vec())
}

/// Arrays of scalars, and arrays of arrays up to three levels deep.
fn array_value() -> BoxedStrategy<MetadataValue> {
    let flat = scalar_type().prop_flat_map(|ty| {
        prop::collection::vec(scalar_of(ty), 0..6)
            .prop_map(move |values| MetadataValue::Array(MetadataArray::new(ty, values)))
    });
    flat.prop_recursive(3, 48, 4, |inner| {
        prop::collection::vec(inner, 0..4).prop_map(|values| {
            MetadataValue::Array(MetadataArray::new(MetadataValueType::Array, values))
        })
    })
    .boxed()
}

fn any_value() -> BoxedStrategy<MetadataValue> {
    prop_oneof![
        3 => scalar_type().prop_flat_map(scalar_of),
        1 => array_value(),
    ]
    .boxed()
}

#[derive(Debug, Clone)]
struct TensorSpec {
    dims: Vec<u64>,
    ty: GgmlType,
    data: Vec<u8>,
}

fn tensor_spec() -> impl Strategy<Value = TensorSpec> {
    let ty = prop::sample::select(GgmlType::ALL.to_vec());
    (ty, 1u64..3, prop::collection::vec(1u64..4, 0..4)).prop_flat_map(|(ty, blocks, rest)| {
        let mut dims = vec![blocks * ty.block_size() as u64];
        dims.extend(rest);
        let n: u64 = dims.iter().product();
        let size = ty.bytes_for(n).unwrap_or(0) as usize;
        prop::collection::vec(any::<u8>(), size).prop_map(move |data| TensorSpec {
            dims: dims.clone(),
            ty,
            data,
        })
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn read_of_write_is_identity(
        pairs in prop::collection::vec(("[a-z][a-z0-9_.]{0,15}", any_value()), 0..10),
        tensors in prop::collection::vec(tensor_spec(), 0..6),
        align_shift in prop::option::of(0u32..9),
    ) {
        let mut writer = GgufWriter::new();
        let mut expected = Metadata::new();
        for (key, value) in &pairs {
            writer.add_metadata(key, value.clone());
            expected.insert(key, value.clone());
        }
        let alignment = match align_shift {
            Some(shift) => {
                writer.set_alignment(1 << shift);
                expected.insert("general.alignment", MetadataValue::U32(1 << shift));
                1u64 << shift
            }
            None => 32,
        };
        for (i, t) in tensors.iter().enumerate() {
            writer.add_tensor(&format!("t{i}"), &t.dims, t.ty, t.data.clone()).unwrap();
        }
        let bytes = writer.to_bytes().unwrap();
        let file = GgufFile::from_bytes("rt.gguf", bytes).unwrap();

        prop_assert_eq!(file.version(), 3);
        prop_assert_eq!(file.alignment(), alignment);
        prop_assert_eq!(file.metadata(), &expected);
        let read: Vec<(&str, &MetadataValue)> = file.metadata().iter().collect();
        let want: Vec<(&str, &MetadataValue)> = expected.iter().collect();
        prop_assert_eq!(read, want);
        prop_assert_eq!(file.tensors().len(), tensors.len());
        for (i, t) in tensors.iter().enumerate() {
            let info = file.tensor(&format!("t{i}")).unwrap();
            prop_assert_eq!(&info.dims, &t.dims);
            prop_assert_eq!(info.ty, t.ty);
            prop_assert_eq!(info.offset % alignment, 0);
            prop_assert_eq!(file.tensor_data(info), t.data.as_slice());
        }
    }
}
