//! The one read behind `audit tail` and `hooks tail`: the newest rows, or those after an id.

use sea_orm::{ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter, QueryOrder, QuerySelect, Select};

use crate::DbResult;

/// With `after_id`, the oldest `limit` rows after it; without, the newest `limit`. Oldest first
/// either way. `id` is the table's increasing primary key.
pub(crate) async fn newest_or_after<E: EntityTrait>(
    db: &DatabaseConnection,
    query: Select<E>,
    id: E::Column,
    after_id: Option<i64>,
    limit: u64,
) -> DbResult<Vec<E::Model>> {
    Ok(match after_id {
        Some(after_id) => query.filter(id.gt(after_id)).order_by_asc(id).limit(limit).all(db).await?,
        None => {
            let mut newest_first = query.order_by_desc(id).limit(limit).all(db).await?;
            newest_first.reverse();
            newest_first
        }
    })
}
