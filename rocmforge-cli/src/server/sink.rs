//! The engine's events delivered into a tokio channel read by the HTTP handler.

use rocmforge_model::engine::{EngineEvent, EventSink};
use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender, unbounded_channel};

/// A sink whose receiver lives in a request handler; when the client disconnects the
/// handler (and the receiver) is dropped, which the engine sees as `is_closed`.
#[derive(Debug)]
pub struct ChannelSink(UnboundedSender<EngineEvent>);

impl EventSink for ChannelSink {
    fn send(&mut self, event: EngineEvent) -> bool {
        self.0.send(event).is_ok()
    }

    fn is_closed(&self) -> bool {
        self.0.is_closed()
    }
}

/// A sink and the receiver of its events.
pub fn channel() -> (Box<ChannelSink>, UnboundedReceiver<EngineEvent>) {
    let (tx, rx) = unbounded_channel();
    (Box::new(ChannelSink(tx)), rx)
}
