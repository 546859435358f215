using Uring.Native;

namespace Uring.Transport.Internal;

/// <summary>What a loop is made with: its engine and ring size, the features it may use, its buffers, zero-copy, and the test environment.</summary>
internal sealed record LoopSettings(
    UringEngine Engine, int Entries, RingFeatures Features, int BufferCount, int BufferSize, int ZeroCopyThreshold, TransportEnvironment Environment);
