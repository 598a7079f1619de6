//! Reading a table's rows back as model types: [`ReadRow`], and the test helpers that check a
//! select list and its read row against the table's columns and encoder.

use std::marker::PhantomData;

use serde::de::{self, Deserializer, SeqAccess, Visitor};

/// A row read back through a table's select list, column by column in [`ReadRow::COLUMNS`]
/// order: the order its encoder writes and its select list reads. Its `Deserialize` is
/// [`read_row`].
///
/// Read as a tuple, so the row type can hold a model type whole (an `Alert`, a `TokenUse`)
/// and convert stored text leniently (an unknown actor kind reads as `Unknown`). The store
/// client reads plain RowBinary without validation (`store::client::client`), which is
/// positional: the names `clickhouse::Row` derives for such a row are never compared.
pub trait ReadRow: Sized {
    const COLUMNS: &'static [&'static str];

    fn read<'de, A: SeqAccess<'de>>(row: &mut Columns<'de, A>) -> Result<Self, A::Error>;
}

/// The columns of one row, read in order.
pub struct Columns<'de, A: SeqAccess<'de>> {
    seq: A,
    read: usize,
    _de: PhantomData<&'de ()>,
}

impl<'de, A: SeqAccess<'de>> Columns<'de, A> {
    /// The next column's value.
    pub fn column<T: de::Deserialize<'de>>(&mut self) -> Result<T, A::Error> {
        let at = self.read;
        self.read += 1;
        self.seq
            .next_element()?
            .ok_or_else(|| de::Error::invalid_length(at, &"every column of the select list"))
    }
}

/// `Deserialize` for a [`ReadRow`]; fails unless the row reads exactly its columns.
pub fn read_row<'de, D: Deserializer<'de>, R: ReadRow>(d: D) -> Result<R, D::Error> {
    struct RowVisitor<R>(PhantomData<R>);
    impl<'de, R: ReadRow> Visitor<'de> for RowVisitor<R> {
        type Value = R;

        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            write!(f, "a row of {} columns", R::COLUMNS.len())
        }

        fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<R, A::Error> {
            let mut row = Columns {
                seq,
                read: 0,
                _de: PhantomData,
            };
            let value = R::read(&mut row)?;
            if row.read != R::COLUMNS.len() {
                return Err(de::Error::invalid_length(row.read, &self));
            }
            Ok(value)
        }
    }
    d.deserialize_tuple(R::COLUMNS.len(), RowVisitor(PhantomData))
}

/// The column names a select list reads, in order (each item's innermost column: the name
/// inside `toString(...)` or `CAST(... AS ...)`), to check it against the inserted columns.
#[cfg(test)]
pub(crate) fn select_columns(select: &str) -> Vec<&str> {
    select
        .split(", ")
        .map(|item| {
            let inner = item.split_once('(').map_or(item, |(_, rest)| rest);
            inner.split([')', ' ']).next().unwrap_or(inner).trim()
        })
        .collect()
}

/// Serves rows as an encoder wrote them in answer to a SELECT on the clickhouse crate's mock
/// server, so a test reads them back through the client as production does.
#[cfg(test)]
pub(crate) async fn read_back<R>(encoded: Vec<u8>) -> Vec<R>
where
    R: clickhouse::RowOwned + clickhouse::RowRead,
{
    use clickhouse::test::{Mock, handlers};
    use serde::ser::{SerializeTuple, Serializer};

    /// Bytes as they are: a tuple of `u8` is its bytes in RowBinary.
    #[derive(clickhouse::Row)]
    struct Encoded {
        bytes: Vec<u8>,
    }
    impl serde::Serialize for Encoded {
        fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            let mut t = s.serialize_tuple(self.bytes.len())?;
            for b in &self.bytes {
                t.serialize_element(b)?;
            }
            t.end()
        }
    }
    let mock = Mock::new();
    mock.add(handlers::provide([Encoded { bytes: encoded }]));
    clickhouse::Client::default()
        .with_mock(&mock)
        .query("SELECT 1")
        .fetch_all::<R>()
        .await
        .expect("rows read back")
}
