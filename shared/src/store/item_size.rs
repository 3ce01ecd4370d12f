//! An item's size as DynamoDB counts it against its 400 KB limit: attribute names and values
//! in UTF-8 bytes, numbers at most 21 bytes, one byte per list or map element and three per
//! list or map. Estimated from above, so an item this accepts DynamoDB accepts.

use aws_sdk_dynamodb::types::AttributeValue;

use super::keys::Item;

/// DynamoDB's largest item.
pub const MAX_ITEM_BYTES: usize = 400 * 1024;

pub fn item_bytes(item: &Item) -> usize {
    item.iter().map(|(k, v)| k.len() + value_bytes(v)).sum()
}

fn value_bytes(v: &AttributeValue) -> usize {
    match v {
        AttributeValue::S(s) => s.len(),
        AttributeValue::N(n) => n.len().min(21) + 1,
        AttributeValue::B(b) => b.as_ref().len(),
        AttributeValue::Bool(_) | AttributeValue::Null(_) => 1,
        AttributeValue::Ss(v) => v.iter().map(String::len).sum(),
        AttributeValue::Ns(v) => v.iter().map(|n| n.len().min(21) + 1).sum(),
        AttributeValue::Bs(v) => v.iter().map(|b| b.as_ref().len()).sum(),
        AttributeValue::L(l) => 3 + l.iter().map(|x| 1 + value_bytes(x)).sum::<usize>(),
        AttributeValue::M(m) => {
            3 + m
                .iter()
                .map(|(k, x)| 1 + k.len() + value_bytes(x))
                .sum::<usize>()
        }
        _ => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_names_values_and_nesting() {
        let item = Item::from([
            ("pk".to_owned(), AttributeValue::S("abc".into())),
            (
                "m".to_owned(),
                AttributeValue::M([("x".to_owned(), AttributeValue::S("12345".into()))].into()),
            ),
        ]);
        assert_eq!(item_bytes(&item), 2 + 3 + 1 + 3 + 1 + 1 + 5);
    }
}
