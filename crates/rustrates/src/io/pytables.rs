//! HDF5 nodes laid out as PyTables lays them out, so PyTables (and pandas' `read_hdf`, which
//! reads through it) sees exactly what its own writer would have produced.
//!
//! Why: pandas' fixed-format keys written through PyTables cost ≈ 0.7 ms of Python per node
//! (a sweep's result file has ≈ 30), more than a whole 10,000-point cluster sweep may spend
//! outside its chunks. The Python package decides *what* to write (pandas' format rules, in
//! `rustrates/_pandas_keys.py`, checked against pandas' own output node by node); this
//! module only writes the nodes, in one call.
//!
//! PyTables' conventions reproduced here: every group carries `CLASS = "GROUP"`,
//! `VERSION = "1.0"`, an empty `TITLE`; arrays `CLASS = "ARRAY"`, `VERSION = "2.4"`,
//! `FLAVOR = "numpy"`; object VLArrays (one pickled row) `CLASS = "VLARRAY"`,
//! `VERSION = "1.4"`, `PSEUDOATOM = "object"`; a new file's root also
//! `PYTABLES_FORMAT_VERSION = "2.1"`. One deliberate difference: PyTables chunks an object
//! VLArray by 65,536 rows, which allocates 1 MiB of file (and of fsync) for its one row;
//! here the chunk is that row (any chunking reads the same). Text attributes are fixed-length UTF-8 strings,
//! pickled ones (PyTables pickles `None` as `N.`) fixed-length ASCII, the empty string a
//! null dataspace, integers 64-bit, booleans 8-bit bitfields.

use std::ffi::CString;
use std::path::Path;

use hdf5_sys::h5::hsize_t;
use hdf5_sys::h5a::{H5Acreate2, H5Awrite};
use hdf5_sys::h5d::{H5D_fill_time_t, H5Dcreate2, H5Dwrite};
use hdf5_sys::h5i::hid_t;
use hdf5_sys::h5l::H5Lcreate_hard;
use hdf5_sys::h5p::{H5Pcreate, H5Pset_chunk, H5Pset_fill_time, H5P_CLS_DATASET_CREATE, H5P_DEFAULT};
use hdf5_sys::h5s::{H5S_class_t, H5Screate, H5Screate_simple, H5S_ALL, H5S_UNLIMITED};
use hdf5_sys::h5t::{
    hvl_t, H5T_cset_t, H5T_str_t, H5Tcopy, H5Tset_cset, H5Tset_size, H5Tset_strpad, H5Tvlen_create, H5T_C_S1,
    H5T_IEEE_F64LE, H5T_NATIVE_B8, H5T_NATIVE_DOUBLE, H5T_NATIVE_INT64, H5T_NATIVE_INT8, H5T_NATIVE_UCHAR,
    H5T_STD_I64LE, H5T_STD_I8LE, H5T_STD_U8LE,
};

use super::IoError;

/// An attribute value, typed as PyTables stores the Python value.
#[derive(Debug, Clone, PartialEq)]
pub enum Attr {
    /// A `str`: fixed-length UTF-8; the empty string is stored as a null dataspace.
    Text(String),
    /// Bytes PyTables wrote as ASCII (its pickles of non-numpy values, e.g. `N.` for `None`).
    Ascii(Vec<u8>),
    Int(i64),
    Bool(bool),
}

/// Element types of plain arrays.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Element {
    F64,
    I64,
    I8,
    /// numpy `S<n>`: fixed-length, NUL-padded ASCII of `n` bytes.
    Bytes(usize),
}

impl Element {
    fn size(self) -> usize {
        match self {
            Element::F64 | Element::I64 => 8,
            Element::I8 => 1,
            Element::Bytes(n) => n,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum NodeKind {
    Group,
    /// A PyTables `Array`: `data` holds the elements in C order, native byte order.
    Array {
        element: Element,
        shape: Vec<usize>,
        data: Vec<u8>,
    },
    /// A PyTables `VLArray` of `ObjectAtom` with one row: the pickle bytes.
    Object(Vec<u8>),
    /// A second name for the node at this absolute path (an HDF5 hard link).
    HardLink(String),
    /// A float64 `Array` holding the file's own `/traces` (`[points, time, columns]`, see
    /// [`super::h5`]) as pandas stores the block of the traces frame whose columns are
    /// `(label, node, key)`, label-major: `[time, points × columns]`, element
    /// `[t][p · columns + c]` = `/traces[p][t][c]` (float32 traces widened exactly). Copied
    /// band by band of points ([`TRACES_BAND_BYTES`]), so memory holds one band, not the
    /// traces.
    TracesBlock,
}

/// Bytes of `/traces` a [`NodeKind::TracesBlock`] copies at a time (a whole number of its
/// chunks, so a compressed chunk is inflated once); memory holds them twice (as read and
/// transposed).
pub const TRACES_BAND_BYTES: usize = 32 << 20;

#[cfg(test)]
thread_local! {
    /// Tests copy small files in several bands.
    pub(crate) static TRACES_BAND: std::cell::Cell<usize> = const { std::cell::Cell::new(TRACES_BAND_BYTES) };
}

fn traces_band_bytes() -> usize {
    #[cfg(test)]
    return TRACES_BAND.with(|b| b.get());
    #[cfg(not(test))]
    TRACES_BAND_BYTES
}

#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    /// Absolute path, e.g. `/Results/result_map/axis0`; missing parent groups are created
    /// as PyTables groups.
    pub path: String,
    pub kind: NodeKind,
    pub attrs: Vec<(String, Attr)>,
}

/// Writes `nodes` in order into `path`: a new file when `create` (replacing one there),
/// otherwise the existing file.
pub fn write_nodes(path: &Path, create: bool, nodes: &[Node]) -> Result<(), IoError> {
    let err = |source: hdf5::Error| IoError::Hdf5 {
        path: path.to_path_buf(),
        source,
    };
    // No sieve buffer: the rows of a `TracesBlock` band are strided pieces of a contiguous
    // array, which a sieve buffer (64 KiB by default) would read and write back whole for
    // each piece; without one, each piece is one write.
    let options = || {
        let mut b = hdf5::File::with_options();
        b.with_fapl(|p| p.sieve_buf_size(0));
        b
    };
    let file = if create {
        options().create(path)
    } else {
        options().open_rw(path)
    }
    .map_err(err)?;
    hdf5::sync::sync(|| -> Result<(), hdf5::Error> {
        let root = file.id();
        if create {
            set_attrs(root, &group_attrs(true))?;
        }
        for node in nodes {
            write_node(&file, root, node).map_err(|e| hdf5::Error::from(format!("{}: {e}", node.path)))?;
        }
        Ok(())
    })
    .map_err(err)?;
    file.close().map_err(err)
}

fn system_attr(value: &str) -> Attr {
    Attr::Text(value.to_owned())
}

fn group_attrs(root: bool) -> Vec<(String, Attr)> {
    let mut attrs = vec![
        ("CLASS".to_owned(), system_attr("GROUP")),
        ("TITLE".to_owned(), system_attr("")),
        ("VERSION".to_owned(), system_attr("1.0")),
    ];
    if root {
        attrs.push(("PYTABLES_FORMAT_VERSION".to_owned(), system_attr("2.1")));
    }
    attrs
}

/// The system attributes PyTables gives a leaf, then the node's own.
fn leaf_attrs(class: &str, version: &str, node: &Node) -> Vec<(String, Attr)> {
    let mut attrs = vec![
        ("CLASS".to_owned(), system_attr(class)),
        ("VERSION".to_owned(), system_attr(version)),
        ("TITLE".to_owned(), system_attr("")),
    ];
    match &node.kind {
        NodeKind::Object(_) => attrs.push(("PSEUDOATOM".to_owned(), system_attr("object"))),
        _ => attrs.push(("FLAVOR".to_owned(), system_attr("numpy"))),
    }
    attrs.extend(node.attrs.iter().cloned());
    attrs
}

/// An HDF5 identifier closed when dropped (callers hold the library lock).
struct Id(hid_t);

impl Drop for Id {
    fn drop(&mut self) {
        if self.0 >= 0 {
            // SAFETY: an identifier this module opened and owns; H5Idec_ref closes it
            // whatever its kind (dataspace, type, property list, dataset, attribute).
            unsafe { hdf5_sys::h5i::H5Idec_ref(self.0) };
        }
    }
}

fn check(id: hid_t, what: &str) -> Result<Id, hdf5::Error> {
    if id < 0 {
        Err(hdf5::Error::from(format!("{what} failed")))
    } else {
        Ok(Id(id))
    }
}

fn check_status(status: i32, what: &str) -> Result<(), hdf5::Error> {
    if status < 0 {
        Err(hdf5::Error::from(format!("{what} failed")))
    } else {
        Ok(())
    }
}

fn c_name(name: &str) -> Result<CString, hdf5::Error> {
    CString::new(name).map_err(|_| hdf5::Error::from(format!("name {name:?} contains a NUL byte")))
}

/// The parent groups of `path` as PyTables groups, then the group itself when `last`.
fn ensure_groups(root: hid_t, path: &str, last: bool) -> Result<(), hdf5::Error> {
    let parts: Vec<&str> = path.split('/').filter(|p| !p.is_empty()).collect();
    let upto = if last {
        parts.len()
    } else {
        parts.len().saturating_sub(1)
    };
    let mut at = String::new();
    for part in &parts[..upto] {
        at.push('/');
        at.push_str(part);
        let name = c_name(&at)?;
        // SAFETY: root is an open file; name is a NUL-terminated path.
        let exists = unsafe { hdf5_sys::h5l::H5Lexists(root, name.as_ptr(), H5P_DEFAULT) };
        if exists > 0 {
            continue;
        }
        // SAFETY: as above; the returned group id is owned by `group`.
        let group = check(
            unsafe { hdf5_sys::h5g::H5Gcreate2(root, name.as_ptr(), H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT) },
            "creating the group",
        )?;
        set_attrs(group.0, &group_attrs(false))?;
    }
    Ok(())
}

fn open_object(root: hid_t, path: &str) -> Result<Id, hdf5::Error> {
    let name = c_name(path)?;
    // SAFETY: root is an open file; the object id is owned by the returned Id.
    check(
        unsafe { hdf5_sys::h5o::H5Oopen(root, name.as_ptr(), H5P_DEFAULT) },
        "opening the node",
    )
}

fn write_node(file: &hdf5::File, root: hid_t, node: &Node) -> Result<(), hdf5::Error> {
    match &node.kind {
        NodeKind::Group => {
            ensure_groups(root, &node.path, true)?;
            let group = open_object(root, &node.path)?;
            set_attrs(group.0, &node.attrs)
        }
        NodeKind::HardLink(target) => {
            let target = c_name(target)?;
            let name = c_name(&node.path)?;
            ensure_groups(root, &node.path, false)?;
            // SAFETY: an open file and NUL-terminated paths.
            check_status(
                unsafe { H5Lcreate_hard(root, target.as_ptr(), root, name.as_ptr(), H5P_DEFAULT, H5P_DEFAULT) },
                "creating the hard link",
            )
        }
        NodeKind::Array { element, shape, data } => {
            let n: usize = shape.iter().product::<usize>() * element.size();
            if n != data.len() {
                return Err(hdf5::Error::from(format!(
                    "{} bytes given for shape {shape:?} of {element:?}, expected {n}",
                    data.len()
                )));
            }
            let (dset, mem_type) = create_array(root, &node.path, *element, shape)?;
            if !data.is_empty() {
                // SAFETY: data holds exactly the dataspace's elements of mem_type (checked above).
                check_status(
                    unsafe { H5Dwrite(dset.0, mem_type.0, H5S_ALL, H5S_ALL, H5P_DEFAULT, data.as_ptr().cast()) },
                    "writing the array",
                )?;
            }
            set_attrs(dset.0, &leaf_attrs("ARRAY", "2.4", node))
        }
        NodeKind::TracesBlock => write_traces_block(file, root, node),
        NodeKind::Object(bytes) => {
            ensure_groups(root, &node.path, false)?;
            // SAFETY: type construction from library constants; owned ids.
            let file_type = check(unsafe { H5Tvlen_create(*H5T_STD_U8LE) }, "a variable-length type")?;
            let mem_type = check(unsafe { H5Tvlen_create(*H5T_NATIVE_UCHAR) }, "a variable-length type")?;
            let dims: [hsize_t; 1] = [1];
            let max: [hsize_t; 1] = [H5S_UNLIMITED];
            // SAFETY: the arrays outlive the call.
            let space = check(
                unsafe { H5Screate_simple(1, dims.as_ptr(), max.as_ptr()) },
                "a dataspace",
            )?;
            let dcpl = check(unsafe { H5Pcreate(*H5P_CLS_DATASET_CREATE) }, "a dataset property list")?;
            let chunk: [hsize_t; 1] = [1];
            check_status(unsafe { H5Pset_chunk(dcpl.0, 1, chunk.as_ptr()) }, "chunking")?;
            let dset = create_dataset(root, &node.path, &file_type, &space, &dcpl)?;
            let row = hvl_t {
                len: bytes.len(),
                p: bytes.as_ptr() as *mut _,
            };
            // SAFETY: one hvl_t pointing into `bytes`, which outlives the call; HDF5 copies it.
            check_status(
                unsafe {
                    H5Dwrite(
                        dset.0,
                        mem_type.0,
                        H5S_ALL,
                        H5S_ALL,
                        H5P_DEFAULT,
                        (&row as *const hvl_t).cast(),
                    )
                },
                "writing the object array",
            )?;
            set_attrs(dset.0, &leaf_attrs("VLARRAY", "1.4", node))
        }
    }
}

/// A PyTables `Array`'s dataset (no attributes yet) and the memory type of its elements.
fn create_array(root: hid_t, path: &str, element: Element, shape: &[usize]) -> Result<(Id, Id), hdf5::Error> {
    ensure_groups(root, path, false)?;
    let (file_type, mem_type) = element_types(element)?;
    let dims: Vec<hsize_t> = shape.iter().map(|&d| d as hsize_t).collect();
    // SAFETY: dims outlives the call; a rank-0 shape makes a scalar dataspace.
    let space = check(
        unsafe { H5Screate_simple(dims.len() as i32, dims.as_ptr(), std::ptr::null()) },
        "a dataspace",
    )?;
    // SAFETY: plain property-list calls on an owned list.
    let dcpl = check(unsafe { H5Pcreate(*H5P_CLS_DATASET_CREATE) }, "a dataset property list")?;
    check_status(
        unsafe { H5Pset_fill_time(dcpl.0, H5D_fill_time_t::H5D_FILL_TIME_NEVER) },
        "fill time",
    )?;
    Ok((create_dataset(root, path, &file_type, &space, &dcpl)?, mem_type))
}

/// Writes a [`NodeKind::TracesBlock`]: bands of whole chunks of `/traces` read, transposed
/// and written as the columns of their points.
fn write_traces_block(file: &hdf5::File, root: hid_t, node: &Node) -> Result<(), hdf5::Error> {
    let traces = file.dataset("traces")?;
    let &[n_points, n_time, n_cols] = traces.shape().as_slice() else {
        return Err(hdf5::Error::from("/traces is not [points, time, columns]"));
    };
    let width = n_points * n_cols;
    let (dset, _) = create_array(root, &node.path, Element::F64, &[n_time, width])?;
    let out = file.dataset(&node.path)?;
    let point_bytes = n_time * n_cols * size_of::<f64>();
    if width > 0 && n_time > 0 {
        let chunk_points = traces.chunk().map_or(1, |c| c[0]).max(1);
        let band = (traces_band_bytes() / point_bytes.max(1) / chunk_points).max(1) * chunk_points;
        let mut block = Vec::new();
        let mut p0 = 0;
        while p0 < n_points {
            let p1 = (p0 + band).min(n_points);
            let values = traces.read_slice::<f64, _, ndarray::Ix3>((p0..p1, .., ..))?;
            let w = (p1 - p0) * n_cols;
            block.clear();
            block.resize(n_time * w, 0.0);
            for (p, point) in values.outer_iter().enumerate() {
                for (t, row) in point.outer_iter().enumerate() {
                    for (c, v) in row.iter().enumerate() {
                        block[t * w + p * n_cols + c] = *v;
                    }
                }
            }
            let view =
                ndarray::ArrayView2::from_shape((n_time, w), &block).map_err(|e| hdf5::Error::from(e.to_string()))?;
            out.write_slice(view, (.., p0 * n_cols..p1 * n_cols))?;
            p0 = p1;
        }
    }
    set_attrs(dset.0, &leaf_attrs("ARRAY", "2.4", node))
}

fn create_dataset(root: hid_t, path: &str, file_type: &Id, space: &Id, dcpl: &Id) -> Result<Id, hdf5::Error> {
    let name = c_name(path)?;
    // SAFETY: every id is open; the dataset id is owned by the returned Id.
    check(
        unsafe {
            H5Dcreate2(
                root,
                name.as_ptr(),
                file_type.0,
                space.0,
                H5P_DEFAULT,
                dcpl.0,
                H5P_DEFAULT,
            )
        },
        "creating the dataset",
    )
}

/// (file type, memory type) of an element.
fn element_types(element: Element) -> Result<(Id, Id), hdf5::Error> {
    // SAFETY: copies of library constants, owned by the returned ids.
    let copy = |t: hid_t| check(unsafe { H5Tcopy(t) }, "a datatype");
    Ok(match element {
        Element::F64 => (copy(*H5T_IEEE_F64LE)?, copy(*H5T_NATIVE_DOUBLE)?),
        Element::I64 => (copy(*H5T_STD_I64LE)?, copy(*H5T_NATIVE_INT64)?),
        Element::I8 => (copy(*H5T_STD_I8LE)?, copy(*H5T_NATIVE_INT8)?),
        Element::Bytes(n) => (
            string_type(n, H5T_cset_t::H5T_CSET_ASCII)?,
            string_type(n, H5T_cset_t::H5T_CSET_ASCII)?,
        ),
    })
}

fn string_type(size: usize, cset: H5T_cset_t) -> Result<Id, hdf5::Error> {
    // SAFETY: a copy of the C string type, then settings on the owned copy.
    let t = check(unsafe { H5Tcopy(*H5T_C_S1) }, "a string type")?;
    check_status(unsafe { H5Tset_size(t.0, size.max(1)) }, "string size")?;
    check_status(
        unsafe { H5Tset_strpad(t.0, H5T_str_t::H5T_STR_NULLTERM) },
        "string padding",
    )?;
    check_status(unsafe { H5Tset_cset(t.0, cset) }, "string encoding")?;
    Ok(t)
}

fn set_attrs(obj: hid_t, attrs: &[(String, Attr)]) -> Result<(), hdf5::Error> {
    for (name, value) in attrs {
        set_attr(obj, name, value).map_err(|e| hdf5::Error::from(format!("attribute {name}: {e}")))?;
    }
    Ok(())
}

fn set_attr(obj: hid_t, name: &str, value: &Attr) -> Result<(), hdf5::Error> {
    let scalar = || check(unsafe { H5Screate(H5S_class_t::H5S_SCALAR) }, "a dataspace");
    let (dtype, space, bytes): (Id, Id, Vec<u8>) = match value {
        Attr::Text(s) if s.is_empty() => (
            string_type(1, H5T_cset_t::H5T_CSET_UTF8)?,
            check(unsafe { H5Screate(H5S_class_t::H5S_NULL) }, "a dataspace")?,
            Vec::new(),
        ),
        Attr::Text(s) => (
            string_type(s.len(), H5T_cset_t::H5T_CSET_UTF8)?,
            scalar()?,
            s.as_bytes().to_vec(),
        ),
        Attr::Ascii(b) => (string_type(b.len(), H5T_cset_t::H5T_CSET_ASCII)?, scalar()?, b.clone()),
        Attr::Int(v) => (
            check(unsafe { H5Tcopy(*H5T_STD_I64LE) }, "a datatype")?,
            scalar()?,
            v.to_le_bytes().to_vec(),
        ),
        Attr::Bool(v) => (
            check(unsafe { H5Tcopy(*H5T_NATIVE_B8) }, "a datatype")?,
            scalar()?,
            vec![u8::from(*v)],
        ),
    };
    let cname = c_name(name)?;
    // SAFETY: open ids; the attribute id is owned by `attr`.
    let attr = check(
        unsafe { H5Acreate2(obj, cname.as_ptr(), dtype.0, space.0, H5P_DEFAULT, H5P_DEFAULT) },
        "creating it",
    )?;
    if !bytes.is_empty() {
        // SAFETY: `bytes` holds one element of `dtype`, which serves as the memory type too
        // (strings, bitfields, and integers given as little-endian bytes).
        check_status(
            unsafe { H5Awrite(attr.0, dtype.0, bytes.as_ptr().cast()) },
            "writing it",
        )?;
    }
    Ok(())
}
