//! Catching a subscription up: from the hub's recent ring, or page by page from its topic's
//! source, delivering only what comes after the connection's cursor for the topic.

use super::{Closed, Connection};
use crate::hub::{Topic, replay};
use bytestring::ByteString;

impl Connection {
    /// Sends everything after the topic's cursor: from the hub's recent ring while it covers
    /// the cursor, otherwise page by page from the topic's source until the cursor reaches
    /// the ring or the end.
    pub(super) async fn catch_up(&mut self, topic: Topic) -> Result<(), Closed> {
        // The next page is read (on the database's threads) while this one is sent.
        let mut next_page: Option<actix_web::rt::task::JoinHandle<_>> = None;
        loop {
            let Some(&cursor) = self.subs.get(&topic) else {
                return Ok(());
            };
            if let Some(events) = replay::from_memory(&self.state.hub, topic, cursor) {
                for published in events {
                    let (_, seq) = published.event.topic();
                    self.deliver(topic, seq, published.wire()).await?;
                }
                return Ok(());
            }
            let page = match next_page.take() {
                Some(reading) => match reading.await {
                    Ok(page) => page,
                    Err(e) => Err(sea_orm::DbErr::Custom(e.to_string())),
                },
                None => replay::page(&self.state.db, &self.state.runtime_logs, topic, cursor).await,
            };
            let page = match page {
                Ok(page) => page,
                Err(e) => {
                    tracing::warn!(error = %e, %topic, "replay failed");
                    let name = topic.to_string();
                    let why = "replay failed; resubscribe";
                    return self.error(Some(&name), "internal", why).await;
                }
            };
            if let Some(reset) = page.reset_cursor {
                self.subs.insert(topic, reset);
            }
            for notice in page.notices {
                self.send(notice).await?;
            }
            if page.more
                && let Some(&(last, _)) = page.events.last()
            {
                let state = self.state.clone();
                next_page = Some(actix_web::rt::spawn(async move {
                    replay::page(&state.db, &state.runtime_logs, topic, last).await
                }));
            }
            for (seq, message) in page.events {
                self.deliver(topic, seq, message).await?;
            }
            if !page.more {
                return Ok(());
            }
        }
    }

    /// Queues one message if it is the next after the cursor; older ones are duplicates.
    pub(super) async fn deliver(
        &mut self,
        topic: Topic,
        seq: i64,
        message: impl Into<ByteString>,
    ) -> Result<(), Closed> {
        match self.subs.get_mut(&topic) {
            Some(cursor) if seq > *cursor => {
                *cursor = seq;
                self.queue(topic, message.into()).await
            }
            _ => Ok(()),
        }
    }
}
