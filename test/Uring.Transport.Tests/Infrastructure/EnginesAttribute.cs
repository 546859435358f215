using System.Reflection;
using Xunit.Sdk;

namespace Uring.Transport.Tests.Infrastructure;

/// <summary>Runs a theory once per ring engine of the transport: io_uring, then epoll.</summary>
[AttributeUsage(AttributeTargets.Method)]
public sealed class EnginesAttribute : DataAttribute
{
    public override IEnumerable<object[]> GetData(MethodInfo testMethod) =>
    [
        [RingEngine.IoUring],
        [RingEngine.Epoll],
    ];
}
