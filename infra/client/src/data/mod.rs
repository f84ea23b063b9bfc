//! The brokers' data API (`openapi/data-plane.json`): queues ([`queues`],
//! message shapes in [`messages`], push consumers in [`consume`]) and
//! streams ([`streams`], stored-batch fetches in [`batches`], consumer
//! groups in [`groups`]). Any broker serves any queue or stream (it
//! forwards), so one client per broker URL is enough.

pub mod batches;
pub mod consume;
pub mod groups;
pub mod messages;
pub mod queues;
pub mod sse;
pub mod streams;

pub use batches::{FetchedBatches, Frame, TornFrame};
pub use consume::{ConsumeEvent, ConsumeOptions, ConsumeStream, ConsumerInfo, SseStream};
pub use groups::{
    AssignmentStrategy, CommitRequest, GenerationResponse, GroupDescription, GroupMember,
    HeartbeatRequest, HeartbeatResponse, JoinRequest, JoinResponse, LeaveRequest, PartitionLag,
    SeekRequest, SeekResponse, SeekTo,
};
pub use messages::{BodyEncoding, OutgoingMessage, PeekedMessage, ReceivedMessage};
pub use queues::{
    AckRequest, AckResponse, AckResult, ExchangePublishRequest, ExchangePublishResponse,
    ExtendRequest, ExtendResponse, FailedQueue, NackKind, NackRequest, NackResponse, PeekResponse,
    PublishOutcome, PurgeResponse, QueuePublishRequest, QueuePublishResponse, QueueStatsResponse,
    Rates, ReceiveRequest, ReceiveResponse, RedriveRequest, RedriveResponse, RedrivenMessage,
    RoutedOutcome, WhoAmI,
};
pub use sse::{SseEvent, SseParser};
pub use streams::{
    AllocatedProducer, FetchFrom, FetchRequest, FetchResponse, FetchedRecord, ProduceRecord,
    ProduceRequest, ProduceResponse, ProducedRecord, ProducerHeader,
};
